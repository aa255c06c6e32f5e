"""
docs/billing.md shows what the code does: its Python block runs and prints
what its comments say, its price files are the example files, and its
quoted error is the error.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
import tomllib

from tests.pricing._support import printed_and_promised, toml_file
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.pricing import PriceTable

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "billing.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", PAGE, flags=re.DOTALL)


def test_the_python_block_prints_what_it_says() -> None:
    code = _blocks("python")[0]
    printed, promised = printed_and_promised(code, ROOT)
    assert (
        printed
        == promised
        == [
            "435",
            "0.000435 USD",
            "403 model_not_priced",
        ]
    )


def test_the_page_shows_the_example_files() -> None:
    (toml,) = _blocks("toml")
    (data,) = _blocks("json")
    example = PriceTable.from_file(ROOT / "examples" / "prices.toml")
    assert PriceTable.from_mapping(tomllib.loads(toml, parse_float=str)) == example
    assert PriceTable.from_mapping(json.loads(data, parse_float=str)) == example


def test_the_quoted_error_is_the_error(tmp_path: Path) -> None:
    path = toml_file(
        tmp_path,
        'currency = "USD"\n[[models.m]]\neffective_from = 2026-01-01T00:00:00Z\n'
        'input = "-1"\noutput = "1"\n',
    )
    quoted = "models['m'][0].input: an amount must not be negative, not '-1'"
    assert quoted in PAGE
    with pytest.raises(InvalidConfigError) as caught:
        PriceTable.from_file(path)
    assert str(caught.value) == f"{path}: {quoted}"


def test_the_worked_example_is_the_cost() -> None:
    table = PriceTable.from_file(ROOT / "examples" / "prices.toml")
    feb = datetime(2026, 2, 1, tzinfo=timezone.utc)
    apr = datetime(2026, 4, 1, tzinfo=timezone.utc)
    assert "charged\nas **436**" in PAGE
    assert table.cost_of("llama-3.1-8b", 1001, 500, 200, when=feb) == 436
    assert "290 micro-units" in PAGE
    assert table.cost_of("llama-3.1-8b", 1000, 500, 200, when=apr) == 290


def test_the_worked_invoice_is_what_build_invoice_writes() -> None:
    """The page's invoice example is the CSV build_invoice writes for the records its table lists."""
    from zerfoo_cloud.invoices import build_invoice
    from zerfoo_cloud.metering import BillingRecord

    (shown,) = [b for b in _blocks("text") if b.startswith("tenant_id,")]
    table = PriceTable.from_mapping(
        {
            "currency": "USD",
            "models": {
                "llama-3.1-8b": [
                    {
                        "effective_from": "2026-01-01T00:00:00Z",
                        "input": "0.15",
                        "output": "0.60",
                    },
                    {
                        "effective_from": "2026-11-15T00:00:00Z",
                        "input": "0.10",
                        "output": "0.40",
                    },
                ]
            },
        }
    )

    def priced(day: int, key: str, tokens: tuple[int, int], rid: str) -> BillingRecord:
        at = datetime(2026, 11, day, 10, tzinfo=timezone.utc)
        cost = table.cost_of("llama-3.1-8b", *tokens, when=at)
        return BillingRecord("acme", *tokens, at, "llama-3.1-8b", rid, cost, "USD", key)

    old = datetime(2026, 11, 1, 9, tzinfo=timezone.utc)
    records = [
        BillingRecord("acme", 500, 100, old, "llama-3.1-8b", "r0"),
        priced(3, "k1", (1_000_000, 200_000), "r1"),
        priced(20, "k1", (2_000_000, 500_000), "r2"),
        priced(21, "k2", (10_000, 2_000), "r3"),
    ]
    assert [r.cost for r in records] == [0, 270_000, 400_000, 1_800]
    invoice = build_invoice("acme", "2026-11", records, prices=table)
    assert invoice.to_csv().replace("\r\n", "\n") == shown
    assert invoice.total == 671_800
    assert "0.6718 USD (671,800 micro-units)" in PAGE
