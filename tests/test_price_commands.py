"""
``zerfoo-cloud prices show|set|add``: the stored price table from the
command line, every refusal one line that changes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests._serving import run_cli
from zerfoo_cloud.cli import cli
from zerfoo_cloud.pricing import PriceTable
from zerfoo_cloud.stores.lmdb import LMDBStores

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "prices.toml"


def run(db: Path, *args: str) -> tuple[int, str]:
    """Run the command in this process; return its exit code and output."""
    result = CliRunner().invoke(cli, ["--db", str(db), *args])
    return result.exit_code, result.output


def one_line_error(code: int, output: str, says: str) -> None:
    """The command failed with one line saying *says*."""
    assert code == 1
    assert output.startswith("Error: ")
    assert says in output
    assert len(output.strip().splitlines()) == 1


def test_set_then_show_as_text_and_json(tmp_path: Path) -> None:
    """set stores the file's table as version 1; show prints it as a table and as JSON."""
    db = tmp_path / "db"
    code, out = run(db, "prices", "set", str(EXAMPLE))
    assert (code, out) == (0, "price table version 1 stored (2 models)\n")
    code, out = run(db, "prices", "show")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "price table version 1, in USD per million tokens"
    assert lines[1].split() == ["MODEL", "FROM", "INPUT", "OUTPUT", "CACHED", "INPUT"]
    assert lines[3].split() == [
        "llama-3.1-8b",
        "2026-01-01T00:00:00Z",
        "0.15",
        "0.6",
        "0.075",
    ]
    assert lines[-1].split()[0] == "(default)"
    code, out = run(db, "prices", "show", "--json")
    shown = json.loads(out)
    assert shown["version"] == 1
    assert PriceTable.from_mapping(shown["table"]) == PriceTable.from_file(EXAMPLE)


def test_show_before_any_table(tmp_path: Path) -> None:
    """A store without a table says so (version 0, table null)."""
    db = tmp_path / "db"
    run(db, "tenant", "create", "acme")
    code, out = run(db, "prices", "show")
    assert code == 0
    assert out.startswith("no price table stored (version 0)")
    code, out = run(db, "prices", "show", "--json")
    assert json.loads(out) == {"object": "price_table", "version": 0, "table": None}


def test_if_version_refuses_a_stale_base(tmp_path: Path) -> None:
    """--if-version other than the stored version is refused in one line; the table stays."""
    db = tmp_path / "db"
    run(db, "prices", "set", str(EXAMPLE))
    code, out = run(db, "prices", "set", str(EXAMPLE), "--if-version", "0")
    one_line_error(code, out, "changed since it was read (version 0, now 1)")
    code, out = run(db, "prices", "set", str(EXAMPLE), "--if-version", "1")
    assert (code, out) == (0, "price table version 2 stored (2 models)\n")


def test_set_refuses_a_table_that_changes_the_past(tmp_path: Path) -> None:
    """Another currency, or a price in force changed: one line; the version stays."""
    db = tmp_path / "db"
    run(db, "prices", "set", str(EXAMPLE))
    data = PriceTable.from_file(EXAMPLE).to_mapping()
    euro = tmp_path / "euro.json"
    euro.write_text(json.dumps({**data, "currency": "EUR"}))
    one_line_error(*run(db, "prices", "set", str(euro)), "currency never changes")
    data["models"]["llama-3.1-8b"][0]["input"] = "0.01"
    cheaper = tmp_path / "cheaper.json"
    cheaper.write_text(json.dumps(data))
    one_line_error(*run(db, "prices", "set", str(cheaper)), "missing or changed")
    with LMDBStores.open(db) as stores:
        assert stores.prices.version() == 1


def test_add_a_price_now_or_later(tmp_path: Path) -> None:
    """add: from now (the default) or a later date; a past date, a bad amount or a price past the maximum are one line."""
    db = tmp_path / "db"
    run(db, "prices", "set", str(EXAMPLE))
    code, out = run(db, "prices", "add", "new/model", "--input", "1", "--output", "2")
    assert (code, out) == (
        0,
        "price table version 2 stored: a price of new/model added\n",
    )
    code, out = run(
        db,
        "prices",
        "add",
        "new/model",
        "--input",
        "1000000",
        "--output",
        "2",
        "--cached-input",
        "0.5",
        "--from",
        "2099-01-01T00:00:00Z",
        "--json",
    )
    assert code == 0
    prices = json.loads(out)["table"]["models"]["new/model"]
    assert prices[1] == {
        "effective_from": "2099-01-01T00:00:00Z",
        "input": "1000000",
        "output": "2",
        "cached_input": "0.5",
    }
    for args, says in (
        (("--from", "2021-01-01T00:00:00Z"), "in the past"),
        (("--from", "2099-01-01"), "UTC offset"),
        (("--input", "1000000.000001"), "at most 1000000"),
        (("--input", "-1"), "must not be negative"),
        (("--output", "0.0000001"), "at most 6 decimal places"),
    ):
        options = {"--input": "1", "--output": "2", "--from": "2098-01-01T00:00:00Z"}
        options.update(dict(zip(args[::2], args[1::2], strict=True)))
        flat = [part for pair in options.items() for part in pair]
        one_line_error(*run(db, "prices", "add", "m", *flat), says)
    with LMDBStores.open(db) as stores:
        assert stores.prices.version() == 3


def test_add_needs_a_table(tmp_path: Path) -> None:
    """Before any table (no currency), add is refused in one line."""
    db = tmp_path / "db"
    run(db, "tenant", "create", "acme")
    code, out = run(db, "prices", "add", "m", "--input", "1", "--output", "1")
    one_line_error(code, out, "no price table yet")


@pytest.mark.slow
def test_the_installed_command_sets_and_shows(tmp_path: Path) -> None:
    """The zerfoo-cloud process: prices set then show --json; a missing file is one line on stderr."""
    db = tmp_path / "db"
    done = run_cli(db, "prices", "set", str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    shown = json.loads(run_cli(db, "prices", "show", "--json").stdout)
    assert shown["version"] == 1
    missing = run_cli(db, "prices", "set", str(tmp_path / "none.toml"))
    assert missing.returncode == 1
    assert "Traceback" not in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
