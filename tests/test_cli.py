"""
The zerfoo-cloud command: tenant management on a real LMDB store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from zerfoo_cloud import TenantManager, TenantNotFoundError
from zerfoo_cloud.cli import DB_ENV, cli, main, render_table
from zerfoo_cloud.stores.lmdb import LMDBStores


def run(db: Path, *args: str, stdin: str | None = None) -> tuple[int, str]:
    """
    Run the command in-process against store *db*; return (exit code, output).
    """
    result = CliRunner().invoke(cli, ["--db", str(db), *args], input=stdin)
    return result.exit_code, result.output


def test_create_prints_the_key_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    """create prints a working key; list and show never print it again."""
    db = tmp_path / "db"
    code, out = run(
        db,
        "tenant",
        "create",
        "acme",
        "--rate-limit",
        "10",
        "--model",
        "llama",
        "--json",
    )
    assert code == 0, out
    data = json.loads(out)
    key = data["api_key"]
    assert key.startswith("zc-")
    assert data["rate_limit"] == 10
    assert data["model_allow_list"] == ["llama"]
    for args in (
        ("tenant", "list"),
        ("tenant", "list", "--json"),
        ("tenant", "show", "acme"),
    ):
        code, out = run(db, *args)
        assert code == 0
        assert key not in out
        assert "acme" in out
    with LMDBStores.open(db) as stores:
        assert (
            TenantManager(stores.tenants, limits=stores.limits).get_by_api_key(key).id
            == "acme"
        )
    blob = b"".join(p.read_bytes() for p in db.rglob("*") if p.is_file())
    assert key.encode() not in blob


def test_create_help_shows_the_default_limits(tmp_path: Path) -> None:
    """tenant create --help names the 60 req/min and 100,000 tokens/min a tenant gets without flags."""
    code, out = run(tmp_path / "db", "tenant", "create", "--help")
    assert code == 0
    flat = " ".join(out.split())
    assert "Requests per minute (0: unlimited). [default: 60;" in flat
    assert "Tokens per minute (0: unlimited). [default: 100000;" in flat
    code, out = run(tmp_path / "db", "tenant", "update", "--help")
    assert "default" not in out
    code, out = run(tmp_path / "db", "tenant", "create", "gamma", "--json")
    data = json.loads(out)
    assert (data["rate_limit"], data["token_budget"]) == (60, 100_000)


def test_defaults_and_table_output(tmp_path: Path) -> None:
    """Without limits a tenant gets the documented defaults, shown as a table."""
    code, out = run(tmp_path / "db", "tenant", "create", "beta")
    assert code == 0
    assert "API key (shown once" in out
    code, out = run(tmp_path / "db", "tenant", "list")
    assert out.splitlines()[0].split() == [
        "ID",
        "KEY",
        "REQ/MIN",
        "TOKENS/MIN",
        "CONCURRENT",
        "MODELS",
    ]
    assert "beta" in out
    assert "100,000" in out
    assert "all" in out


def test_update_show_rotate_delete(tmp_path: Path) -> None:
    """update changes limits, rotate-key replaces the key, delete removes the tenant."""
    db = tmp_path / "db"
    _, out = run(db, "tenant", "create", "acme", "--json")
    old_key = json.loads(out)["api_key"]
    code, out = run(
        db,
        "tenant",
        "update",
        "acme",
        "--rate-limit",
        "0",
        "--max-concurrent",
        "3",
        "--model",
        "m",
        "--json",
    )
    assert code == 0, out
    assert json.loads(out)["max_concurrent_requests"] == 3
    code, out = run(db, "tenant", "show", "acme", "--json")
    shown = json.loads(out)
    assert shown["rate_limit"] == 0
    assert shown["requests_remaining"] is None
    assert shown["model_allow_list"] == ["m"]
    code, out = run(db, "tenant", "update", "acme", "--all-models")
    assert code == 0
    assert "all" in out
    code, out = run(db, "tenant", "rotate-key", "acme", "--json")
    new_key = json.loads(out)["api_key"]
    with LMDBStores.open(db) as stores:
        m = TenantManager(stores.tenants, limits=stores.limits)
        assert m.get_by_api_key(new_key).id == "acme"
        with pytest.raises(TenantNotFoundError):
            m.get_by_api_key(old_key)
    code, out = run(db, "tenant", "delete", "acme", stdin="n\n")
    assert code == 1
    code, out = run(db, "tenant", "delete", "acme", stdin="y\n")
    assert code == 0
    assert "deleted" in out
    code, out = run(db, "tenant", "list")
    assert "no tenants" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tenant", "show", "ghost"), "tenant 'ghost' not found"),
        (("tenant", "delete", "ghost", "--yes"), "tenant 'ghost' not found"),
        (("tenant", "create", "bad id"), "tenant id 'bad id' is invalid"),
        (("tenant", "update", "acme"), "nothing to change"),
        (("tenant", "update", "acme", "--model", "x", "--all-models"), "not both"),
        (("tenant", "create", "x", "--rate-limit", "-1"), "-1 is not in the range"),
        (("tenant", "create", "acme"), "already exists"),
    ],
)
def test_expected_failures_are_one_line_errors(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    """Bad input exits non-zero with a message saying what is wrong, no traceback."""
    db = tmp_path / "db"
    run(db, "tenant", "create", "acme")
    code, out = run(db, *args)
    assert code in {1, 2}
    assert message in out
    assert "Traceback" not in out


def test_missing_store_and_missing_db_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command on a store that does not exist, or with no store at all, says what to do."""
    code, out = run(tmp_path / "nothing", "tenant", "list")
    assert code == 1
    assert "no zerfoo-cloud store" in out
    assert not (tmp_path / "nothing").exists()
    monkeypatch.delenv(DB_ENV, raising=False)
    result = CliRunner().invoke(cli, ["tenant", "list"])
    assert result.exit_code == 2
    assert DB_ENV in result.output


def test_main_returns_status_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """main() returns 0 on success, 1 on errors and 2 on usage errors."""
    db = str(tmp_path / "db")
    assert main(["--db", db, "tenant", "create", "acme"]) == 0
    assert main(["--db", db, "tenant", "show", "ghost"]) == 1
    assert main(["--db", db, "tenant", "frobnicate"]) == 2
    assert main(["--help"]) == 0
    assert "tenant" in capsys.readouterr().out


def test_env_variable_names_the_store(tmp_path: Path) -> None:
    """The installed console script reads the store from ZERFOO_CLOUD_DB."""
    env = dict(os.environ, **{DB_ENV: str(tmp_path / "db")})
    script = Path(sys.executable).parent / "zerfoo-cloud"
    done = subprocess.run(
        [str(script), "tenant", "create", "acme", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [str(script), "tenant", "show", "ghost"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "Error: tenant 'ghost' not found"


def test_render_table_aligns_columns() -> None:
    """Columns are padded to their widest cell."""
    text = render_table(["A", "LONG"], [["xyz", "1"], ["q", "22"]])
    assert text.splitlines() == ["A    LONG", "---  ----", "xyz  1", "q    22"]


def seed_usage(db: Path) -> None:
    """
    Write five billing records and three audit entries for tenant acme.
    """
    from zerfoo_cloud import AuditEntry, AuditLogger, TokenMeter

    with LMDBStores.open(db) as stores:
        manager = TenantManager(stores.tenants, limits=stores.limits)
        manager.create(
            __import__("zerfoo_cloud").TenantConfig("acme", "acme-key", 1, 1)
        )
        meter = TokenMeter(stores.billing)
        logger = AuditLogger(stores.audit)
        for i in range(5):
            meter.record("acme", 10 + i, 20, model="llama" if i % 2 else "qwen")
        for _ in range(3):
            logger.log(
                AuditEntry(
                    tenant_id="acme",
                    status_code=200,
                    method="POST",
                    path="/v1/chat/completions",
                )
            )
        meter.close()
        logger.close()


def test_usage_report_formats(tmp_path: Path) -> None:
    """usage report totals per model and day as a table, CSV and JSON."""
    db = tmp_path / "db"
    seed_usage(db)
    code, out = run(db, "usage", "report")
    assert code == 0, out
    assert "llama" in out
    assert "qwen" in out
    code, out = run(db, "usage", "report", "--by", "total", "--format", "csv")
    assert out.splitlines() == [
        "tenant,requests,input_tokens,output_tokens,total_tokens,cost,cost_micros,currency,deleted",
        "acme,5,60,100,160,0,0,,false",
    ]
    code, out = run(db, "usage", "report", "--by", "model", "--format", "json")
    rows = json.loads(out)
    assert {r["model"]: r["requests"] for r in rows} == {"llama": 2, "qwen": 3}
    code, out = run(
        db, "usage", "report", "--since", "2000-01-01", "--until", "2000-01-02"
    )
    assert "no usage" in out
    code, out = run(
        db, "usage", "report", "--since", "2000-01-02", "--until", "2000-01-01"
    )
    assert code == 2
    assert "after --until" in out


def test_deleted_tenants_stay_in_usage_reports_and_exports(tmp_path: Path) -> None:
    """Bill acme, delete acme: report (table, CSV, JSON) and export still show its usage, marked deleted."""
    db = tmp_path / "db"
    seed_usage(db)
    code, out = run(db, "tenant", "create", "beta")
    assert code == 0
    code, out = run(db, "tenant", "delete", "acme", "--yes")
    assert code == 0, out
    code, out = run(db, "usage", "report", "--by", "total", "--format", "csv")
    assert code == 0, out
    assert out.splitlines() == [
        "tenant,requests,input_tokens,output_tokens,total_tokens,cost,cost_micros,currency,deleted",
        "acme,5,60,100,160,0,0,,true",
    ]
    code, out = run(db, "usage", "report", "--by", "model", "--format", "json")
    rows = json.loads(out)
    assert {(r["tenant"], r["deleted"], r["model"]) for r in rows} == {
        ("acme", True, "llama"),
        ("acme", True, "qwen"),
    }
    code, out = run(db, "usage", "report", "--by", "total")
    assert out.splitlines()[0].split()[-1] == "DELETED"
    assert out.splitlines()[2].split()[-1] == "yes"
    result = CliRunner().invoke(cli, ["--db", str(db), "usage", "export"])
    assert result.exit_code == 0
    assert len([line for line in result.stdout.splitlines() if "acme" in line]) == 5
    assert "deleted tenants included: acme" in result.stderr
    # Re-created under the same id, the tenant is current again: not deleted.
    code, out = run(db, "tenant", "create", "acme")
    code, out = run(db, "usage", "report", "--by", "total", "--format", "csv")
    assert out.splitlines()[1] == "acme,5,60,100,160,0,0,,false"


def test_usage_export_to_a_file(tmp_path: Path) -> None:
    """usage export writes every record once, with one CSV header."""
    db = tmp_path / "db"
    seed_usage(db)
    target = tmp_path / "out.csv"
    code, out = run(db, "usage", "export", "--format", "csv", "--output", str(target))
    assert code == 0, out
    lines = target.read_text().splitlines()
    assert lines[0].startswith("timestamp,tenant_id")
    assert len(lines) == 6
    code, out = run(db, "usage", "export")
    assert len([line for line in out.splitlines() if line.startswith("{")]) == 5


def test_audit_query_verify_export(tmp_path: Path) -> None:
    """audit query lists entries, verify passes an intact chain, export writes it all."""
    db = tmp_path / "db"
    seed_usage(db)
    code, out = run(db, "audit", "query", "--tenant", "acme")
    assert code == 0
    assert out.count("/v1/chat/completions") == 3
    code, out = run(db, "audit", "query", "--tenant", "acme", "--format", "json")
    assert len(json.loads(out)) == 3
    code, out = run(db, "audit", "verify")
    assert code == 0
    assert "intact: 3 entries" in out
    code, out = run(db, "audit", "export", "--format", "csv")
    assert code == 0
    assert out.splitlines()[0].startswith("timestamp,")
    code, out = run(db, "audit", "query", "--tenant", "ghost")
    assert "no audit entries" in out


def test_audit_verify_fails_on_a_tampered_log(tmp_path: Path) -> None:
    """A changed entry makes audit verify exit 1 naming the broken position."""
    import lmdb

    db = tmp_path / "db"
    seed_usage(db)
    env = lmdb.open(str(db), max_dbs=32)
    handle = env.open_db(b"audit")
    with env.begin(write=True) as txn:
        key, value = next(iter(txn.cursor(db=handle)))
        txn.put(key, value.replace(b"POST", b"GET!"), db=handle)
    env.close()
    code, out = run(db, "audit", "verify")
    assert code == 1
    assert "BROKEN at entry 1" in out
