"""
Price files, JSON and TOML: read exactly (numbers never become floats),
refused whole with one line naming the path and the place.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.pricing._support import refused, toml_file
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.pricing import MAX_PRICE_FILE_BYTES, PriceTable, read_price_file

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FEB = datetime(2026, 2, 1, tzinfo=timezone.utc)
APR = datetime(2026, 4, 1, tzinfo=timezone.utc)
ENTRY = '{{"effective_from": "2026-01-01T00:00:00Z", "input": {}, "output": "1"}}'


def _document(entry: str) -> str:
    return '{"currency": "USD", "models": {"m": [' + entry + "]}}"


def _json(tmp_path: Path, text: str, name: str = "prices.json") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _refused(path: Path, says: str) -> InvalidConfigError:
    error = refused(lambda: PriceTable.from_file(path), says)
    assert str(error).startswith(f"{path}: ")
    return error


def test_the_example_files_hold_the_same_table() -> None:
    toml = PriceTable.from_file(EXAMPLES / "prices.toml")
    assert PriceTable.from_file(EXAMPLES / "prices.json") == toml
    assert toml.currency == "USD"
    assert toml.cost_of("llama-3.1-8b", 1000, 500, 200, when=FEB) == 435
    assert toml.cost_of("llama-3.1-8b", 1000, 500, 200, when=APR) == 290
    assert toml.cost_of("qwen2.5-72b", 10**6, 10**6, when=FEB) == 1_800_000
    assert toml.cost_of("unlisted", 10**6, 10**6, when=FEB) == 8_000_000
    assert PriceTable.from_file(str(EXAMPLES / "prices.toml")) == toml


def test_json_numbers_are_read_from_their_digits(tmp_path: Path) -> None:
    # 0.123457 has no exact float; as a number it is still read exactly.
    table = PriceTable.from_file(
        _json(
            tmp_path,
            _document(ENTRY.format("0.123457")),
        )
    )
    assert table.models["m"][0].input == 123_457
    # The float nearest 0.1 written out in full has more than six places:
    # refused, so the file's digits are what is read.
    path = _json(
        tmp_path,
        _document(ENTRY.format("0.1000000000000000055511151231257827")),
    )
    error = _refused(path, "at most 6 decimal places")
    assert error.field == "models['m'][0].input"


@pytest.mark.parametrize(
    ("number", "says"),
    [
        ("2.5e-1", "plain decimal"),
        ("1e999999", "plain decimal"),
        ("-0.5", "negative"),
        ("NaN", "NaN is not a number"),
        ("Infinity", "Infinity is not a number"),
        ("-Infinity", "-Infinity is not a number"),
        ("1" * 5000, "at most 40 characters"),
        ("1000000.000001", "at most 1000000"),
        ("true", "not a bool"),
        ("null", "not a NoneType"),
    ],
)
def test_hostile_json_numbers_are_refused(
    tmp_path: Path, number: str, says: str
) -> None:
    path = _json(tmp_path, _document(ENTRY.format(number)))
    _refused(path, says)


def test_a_repeated_key_is_refused(tmp_path: Path) -> None:
    one = ENTRY.format('"1"')
    _refused(
        _json(
            tmp_path,
            '{"currency": "USD", "models": {"m": [' + one + '], "m": [' + one + "]}}",
        ),
        "the key 'm' appears twice",
    )
    _refused(
        _json(tmp_path, '{"currency": "USD", "currency": "EUR"}'),
        "the key 'currency' appears twice",
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "not JSON"),
        ("{", "not JSON"),
        ('{"currency": "USD"} x', "not JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested too deep"),
        (
            '{"currency": "USD", "models": {"m": [{"effective_from": 2026, "input": 1, "output": 1}]}}',
            "ISO 8601",
        ),
        ('{"currency": 840}', "unknown currency"),
        ('{"currency": "USD", "extra": 1}', "unknown key"),
        ('{"currency": "USD", "models": {"m": [[[[[[]]]]]]}}', "a price is a table"),
    ],
)
def test_malformed_json_files_are_refused(tmp_path: Path, text: str, says: str) -> None:
    _refused(_json(tmp_path, text), says)


def test_toml_numbers_and_dates(tmp_path: Path) -> None:
    path = toml_file(
        tmp_path,
        'currency = "EUR"\n[[models.m]]\neffective_from = 2026-01-01T01:00:00+01:00\n'
        "input = 0.123457\noutput = 3\ncached_input = '0.1'\n",
    )
    price = PriceTable.from_file(path).models["m"][0]
    assert (price.input, price.output, price.cached_input) == (
        123_457,
        3_000_000,
        100_000,
    )
    assert price.effective_from == datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("effective_from = 2026-01-01T00:00:00\ninput = 1\noutput = 1", "UTC offset"),
        ("effective_from = 2026-01-01\ninput = 1\noutput = 1", "ISO 8601"),
        ("effective_from = 2026-01-01Z\ninput = 1\noutput = 1", "not TOML"),
        (
            "effective_from = 2026-01-01T00:00:00Z\ninput = inf\noutput = 1",
            "plain decimal",
        ),
        (
            "effective_from = 2026-01-01T00:00:00Z\ninput = nan\noutput = 1",
            "plain decimal",
        ),
        (
            "effective_from = 2026-01-01T00:00:00Z\ninput = 1e3\noutput = 1",
            "plain decimal",
        ),
        (
            "effective_from = 2026-01-01T00:00:00Z\ninput = 1_0.5\noutput = 1",
            "plain decimal",
        ),
        ("effective_from = 2026-01-01T00:00:00Z\ninput = -1\noutput = 1", "negative"),
        ("effective_from = 2026-01-01T00:00:00Z\ninput = 1\ninput = 2", "not TOML"),
        ("effective_from = 2026-01-01T00:00:00Z\ninput = " + "9" * 5000, "not TOML"),
        ("x = " + "[" * 100_000, "nested too deep"),
    ],
)
def test_malformed_toml_files_are_refused(tmp_path: Path, body: str, says: str) -> None:
    path = toml_file(tmp_path, f'currency = "USD"\n[[models.m]]\n{body}\n')
    _refused(path, says)


def test_a_file_at_the_size_limit_is_read_and_one_byte_more_is_not(
    tmp_path: Path,
) -> None:
    text = '{"currency": "USD"}'
    path = _json(tmp_path, text + " " * (MAX_PRICE_FILE_BYTES - len(text)))
    assert path.stat().st_size == MAX_PRICE_FILE_BYTES
    assert PriceTable.from_file(path).currency == "USD"
    path = _json(tmp_path, text + " " * (MAX_PRICE_FILE_BYTES - len(text) + 1))
    _refused(path, f"larger than {MAX_PRICE_FILE_BYTES} bytes")


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    _refused(tmp_path / "missing.json", "cannot read it")
    (tmp_path / "dir.json").mkdir()
    _refused(tmp_path / "dir.json", "cannot read it")
    _refused(
        _json(tmp_path, '{"currency": "USD"}', "prices.yaml"), "ends in .json or .toml"
    )
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"currency": "\xe9"}')
    _refused(latin, "not UTF-8")


def test_a_byte_order_mark_and_an_upper_case_suffix_are_accepted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "PRICES.JSON"
    path.write_bytes(b'\xef\xbb\xbf{"currency": "JPY"}')
    assert PriceTable.from_file(path).currency == "JPY"
    assert read_price_file(os.fspath(path)) == {"currency": "JPY"}


def test_a_written_table_is_read_back_equal(tmp_path: Path) -> None:
    table = PriceTable.from_file(EXAMPLES / "prices.toml")
    path = _json(tmp_path, json.dumps(table.to_mapping()))
    assert PriceTable.from_file(path) == table
