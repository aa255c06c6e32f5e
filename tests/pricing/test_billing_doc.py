"""
docs/billing.md shows what the code does: its Python block runs and prints
what its comments say, its price files are the example files, and its
quoted error is the error.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import tomllib

from tests.pricing._support import toml_file
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.pricing import PriceTable

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "billing.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", PAGE, flags=re.DOTALL)


def test_the_python_block_prints_what_it_says() -> None:
    (code,) = _blocks("python")
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    promised = [
        line.split("# ", 1)[1].split(" (")[0]
        for line in code.splitlines()
        if line.lstrip().startswith("print(")
    ]
    assert (
        done.stdout.splitlines()
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
