"""
``zerfoo-cloud budget set|show|clear``: spend budgets from the command
line, and what a running server spent, read by the command and by the
admin API.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests._serving import ROOT, free_port, run_cli, serve_command
from tests.test_serve import chat, running
from zerfoo_cloud.budget_records import MAX_BUDGET_MICROS, SpendBudget
from zerfoo_cloud.cli import cli
from zerfoo_cloud.pricing import format_micros
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.tenants import TenantManager


def run(db: Path, *args: str) -> tuple[int, str]:
    """Run the command in this process; return its exit code and output."""
    result = CliRunner().invoke(cli, ["--db", str(db), *args])
    return result.exit_code, result.output


def budget_set(db: Path, *args: str) -> tuple[int, str]:
    """Run ``budget set acme ARGS`` in this process."""
    return run(db, "budget", "set", "acme", *args)


def one_line_error(code: int, output: str, says: str) -> None:
    """The command failed with one line saying *says*."""
    assert code != 0
    assert says in output
    assert len(output.strip().splitlines()) == 1, output


def budgets(db: Path, key_id: str | None = None) -> tuple[SpendBudget, ...]:
    """The budgets stored for acme (or its key *key_id*)."""
    with LMDBStores.open(db) as stores:
        record = TenantManager(stores.tenants, limits=stores.limits).get("acme").record
    if key_id is None:
        return record.spend_budgets
    key = record.key_by_id(key_id)
    assert key is not None
    return key.spend_budgets


#: A one-dollar day budget.
DAY = ("--period", "day", "--amount", "1", "--currency", "USD")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A store with tenant acme."""
    path = tmp_path / "db"
    assert run(path, "tenant", "create", "acme")[0] == 0
    return path


def test_set_adds_or_replaces_one_period_and_keeps_the_others(db: Path) -> None:
    """set month then day: both kept; set month again: replaced, the day kept."""
    code, out = budget_set(db, "--period", "month", "--amount", "25.00",
        "--currency", "USD", "--timezone", "Europe/Paris", "--alert-at", "50,80,100",
    )  # fmt: skip
    assert (code, out) == (0, "month budget of acme set to 25 USD\n")
    budget_set(
        db,
        "--period",
        "day",
        "--amount",
        "2",
        "--currency",
        "USD",
    )
    code, out = budget_set(db, "--period", "month", "--amount", "30",
        "--currency", "USD", "--json",
    )  # fmt: skip
    assert code == 0
    assert [b["amount"] for b in json.loads(out)["budgets"]] == ["2", "30"]
    assert budgets(db) == (
        SpendBudget("day", 2_000_000, "USD"),
        SpendBudget("month", 30_000_000, "USD"),
    )


def test_show_prints_each_budget_and_its_period(db: Path) -> None:
    """show: one row per budget with spent, held and remaining; --json gives decimal text."""
    code, out = run(db, "budget", "show", "acme")
    assert (code, out) == (0, "no spend budgets for acme\n")
    budget_set(
        db,
        "--period",
        "lifetime",
        "--amount",
        "100",
        "--currency",
        "EUR",
        "--alert-at",
        "90",
    )
    code, out = run(db, "budget", "show", "acme")
    assert code == 0
    header, _, row = out.splitlines()
    assert header.split() == [
        "PERIOD",
        "AMOUNT",
        "SPENT",
        "HELD",
        "REMAINING",
        "FROM",
        "UNTIL",
        "ALERTS",
    ]
    assert row.split() == ["lifetime", "100", "EUR", "0", "0", "100", "-", "-", "90"]
    shown = json.loads(run(db, "budget", "show", "acme", "--json")[1])
    (status,) = shown["data"]
    assert (status["spent"], status["held"], status["remaining"]) == ("0", "0", "100")
    assert status["period_start"] is None


def test_key_budgets_and_clear(db: Path) -> None:
    """--key sets the key's own budget; clear --period removes one, clear all the rest; clearing what is not there is one line."""
    key_id = json.loads(run(db, "key", "create", "acme", "--name", "ci", "--json")[1])[
        "id"
    ]
    budget_set(
        db,
        "--key",
        key_id,
        "--period",
        "week",
        "--amount",
        "5",
        "--currency",
        "USD",
    )
    budget_set(
        db,
        "--key",
        key_id,
        "--period",
        "day",
        "--amount",
        "1",
        "--currency",
        "USD",
    )
    assert [b.period for b in budgets(db, key_id)] == ["day", "week"]
    assert budgets(db) == ()
    code, out = run(db, "budget", "clear", "acme", "--key", key_id, "--period", "day")
    assert (code, out) == (0, f"cleared the day budget of acme key {key_id}\n")
    assert [b.period for b in budgets(db, key_id)] == ["week"]
    one_line_error(
        *run(db, "budget", "clear", "acme", "--key", key_id, "--period", "day"),
        "no day budget",
    )
    assert run(db, "budget", "clear", "acme", "--key", key_id)[0] == 0
    assert budgets(db, key_id) == ()
    one_line_error(
        *run(db, "budget", "show", "acme", "--key", "k-0000000000000000"), "has no key"
    )
    one_line_error(*run(db, "budget", "show", "nobody"), "nobody")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--amount", "-1"), "must not be negative"),
        (("--amount", "0"), "from 1 to"),
        (("--amount", "1.0000001"), "at most 6 decimal places"),
        (("--amount", format_micros(MAX_BUDGET_MICROS + 1)), "at most"),
        (("--currency", "usd"), "capitals"),
        (("--timezone", "Mars/Olympus"), "unknown time zone"),
        (("--alert-at", "80,50"), "strictly increasing"),
        (("--alert-at", "101"), "strictly increasing"),
        (("--alert-at", "50;80"), "separated by commas"),
    ],
)
def test_bad_budgets_are_one_line_and_change_nothing(
    db: Path, args: tuple[str, str], says: str
) -> None:
    """Each bad value: one line naming the problem; the budgets stay as they were."""
    budget_set(db, *DAY)
    before = budgets(db)
    options = {"--period": "month", "--amount": "25", "--currency": "USD"}
    options.update(dict([args]))
    flat = [part for pair in options.items() for part in pair]
    one_line_error(*budget_set(db, *flat), says)
    assert budgets(db) == before


def test_an_unknown_period_is_a_usage_error(db: Path) -> None:
    """--period outside day, week, month, lifetime: click's usage error (exit 2), naming the choices."""
    code, out = budget_set(
        db,
        "--period",
        "year",
        "--amount",
        "1",
        "--currency",
        "USD",
    )
    assert code == 2
    assert "'year' is not one of 'day', 'week', 'month', 'lifetime'" in out
    assert budgets(db) == ()


def test_the_largest_amount_is_accepted(db: Path) -> None:
    """2**53-1 micro-units is a valid amount."""
    largest = format_micros(MAX_BUDGET_MICROS)
    assert (
        budget_set(
            db,
            "--period",
            "month",
            "--amount",
            largest,
            "--currency",
            "USD",
        )[0]
        == 0
    )
    assert budgets(db)[0].amount == MAX_BUDGET_MICROS


@pytest.mark.slow
def test_what_a_server_spent_is_shown_by_the_command_and_the_admin_api(
    tmp_path: Path,
) -> None:
    """Prices and a budget set with the installed command; requests served; 'budget show' and GET /spend agree with the billed costs; the budget then refuses."""
    db = tmp_path / "db"
    key = json.loads(run_cli(db, "tenant", "create", "acme", "--json").stdout)[
        "api_key"
    ]
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps(
            {
                "currency": "USD",
                "models": {
                    "toy-1": [
                        {
                            "effective_from": "2020-01-01T00:00:00Z",
                            "input": "10000",
                            "output": "10000",
                        }
                    ]
                },
            }
        )
    )
    assert run_cli(db, "prices", "set", str(prices)).returncode == 0
    done = run_cli(
        db, "budget", "set", "acme", "--period", "month", "--amount", "0.5",
        "--currency", "USD", "--timezone", "Europe/Paris",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    port = free_port()
    args = serve_command(db, "toy_openai_app:app", "--port", str(port))
    admin = "admin-key-for-the-budget-tests"
    with running(
        args, port, cwd=ROOT / "examples", env={"ZERFOO_CLOUD_ADMIN_KEY": admin}
    ) as url:
        answers = [chat(url, key) for _ in range(20)]
        spend = httpx.get(
            url + "/admin/tenants/acme/spend",
            headers={"Authorization": f"Bearer {admin}"},
        ).json()["data"]
    codes = [a.status_code for a in answers]
    assert 200 in codes
    assert codes[-1] == 429
    assert answers[-1].json()["error"]["code"] == "insufficient_quota"
    shown = json.loads(run_cli(db, "budget", "show", "acme", "--json").stdout)["data"]
    assert shown == spend
    with LMDBStores.open(db) as stores:
        from datetime import datetime, timedelta, timezone

        now = datetime.now(timezone.utc)
        billed = sum(
            r.cost
            for r in stores.billing.query(
                "acme", now - timedelta(days=40), now + timedelta(hours=1)
            )
        )
    (status,) = shown
    assert status["spent"] == format_micros(billed)
    assert status["held"] == "0"


def test_changes_are_audited_as_made_from_the_command_line(db: Path) -> None:
    """set and clear each write an audit entry naming the budgets and the cli actor."""
    budget_set(db, *DAY)
    run(db, "budget", "clear", "acme")
    code, out = run(db, "audit", "query", "--tenant", "acme", "--format", "json")
    assert code == 0, out
    resources = [entry["resource"] for entry in json.loads(out)]
    assert resources[-2:] == ["spend_budgets by cli", "spend_budgets by cli"]
