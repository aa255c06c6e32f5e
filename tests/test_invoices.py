"""
Invoices from billing records: totals equal to the records' stored costs to
the micro-unit, one line per model and key, the prices in force, unpriced
records shown as such, strict months, and the same bytes for the same
records (library, CLI and admin API).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests._serving import run_cli as _cli
from tests.pricing._support import price_from as _price
from zerfoo_cloud import TenantConfig, TenantManager, TokenMeter, hash_api_key
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.http.admin import AdminAPI
from zerfoo_cloud.invoices import INVOICE_CSV_COLUMNS, build_invoice, parse_month
from zerfoo_cloud.metering import MAX_TOKENS, BillingRecord
from zerfoo_cloud.pricing import PriceTable
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import MemoryBillingStore

NOV = datetime(2026, 11, 1, tzinfo=timezone.utc)
DEC = datetime(2026, 12, 1, tzinfo=timezone.utc)
US = timedelta(microseconds=1)
CHANGE = datetime(2026, 11, 15, 12, tzinfo=timezone.utc)
ADMIN_KEY = "zc-admin-0123456789abcdef0123"


PRICES = PriceTable(
    "USD",
    {
        "llama": [
            _price(datetime(2026, 1, 1, tzinfo=timezone.utc), "0.15", "0.60"),
            _price(CHANGE, "0.10", "0.40"),
        ],
        "qwen": [_price(datetime(2026, 1, 1, tzinfo=timezone.utc), "0.90", "0.90")],
    },
)


def _priced(
    model: str, key_id: str, at: datetime, tokens: tuple[int, int], rid: str
) -> BillingRecord:
    cost = PRICES.cost_of(model, *tokens, when=at)
    return BillingRecord("acme", *tokens, at, model, rid, cost, "USD", key_id)


# -- months -------------------------------------------------------------------


def test_months_are_utc_calendar_months() -> None:
    """A month covers its first microsecond to its last, in UTC; December and February included."""
    assert parse_month("2026-11") == (NOV, DEC - US)
    assert parse_month("2026-12") == (
        DEC,
        datetime(2027, 1, 1, tzinfo=timezone.utc) - US,
    )
    _, end = parse_month("2028-02")
    assert (end + US).month == 3
    assert end.day == 29
    assert parse_month("0001-01")[0].year == 1
    assert parse_month("9999-12")[1] == datetime.max.replace(tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "text",
    [
        "2026-13",
        "2026-00",
        "0000-05",
        "2026-1",
        "26-11",
        "2026/11",
        "2026-11-01",
        " 2026-11",
        "2026-11\n",
        "\u0662\u0660\u0662\u0666-\u0661\u0661",  # Arabic-Indic digits
        "",
        "x" * 10_000,
        None,
        202611,
    ],
)
def test_bad_months_are_refused_in_one_line(text: object) -> None:
    """Anything but strict YYYY-MM (month 01-12, year 0001-9999) is refused with one short line naming the field."""
    with pytest.raises(InvalidConfigError, match="YYYY-MM") as info:
        parse_month(text)
    assert info.value.field == "month"
    assert "\n" not in str(info.value)
    assert len(str(info.value)) < 200


# -- invoices -----------------------------------------------------------------


_models = st.sampled_from(["llama", "qwen"])


@st.composite
def _records(draw: st.DrawFn) -> list[BillingRecord]:
    found = []
    for i in range(draw(st.integers(0, 30))):
        at = NOV + timedelta(microseconds=draw(st.integers(0, (DEC - NOV) // US - 1)))
        tokens = (draw(st.integers(0, 10**9)), draw(st.integers(0, 10**9)))
        key_id = draw(st.sampled_from(["", "k1", "k2"]))
        if draw(st.booleans()):
            found.append(_priced(draw(_models), key_id, at, tokens, f"r{i}"))
        else:  # made before costs were recorded
            found.append(BillingRecord("acme", *tokens, at, draw(_models), f"r{i}"))
    return found


@given(records=_records())
@settings(max_examples=100, deadline=None)
def test_the_total_is_the_sum_of_the_records_costs(
    records: list[BillingRecord],
) -> None:
    """Invoice total == sum of record costs == sum of line totals, to the micro-unit; tokens and requests add up too."""
    invoice = build_invoice("acme", "2026-11", records, prices=PRICES)
    stored = sum(r.cost for r in records)
    assert invoice.total == stored
    assert sum(line.cost for line in invoice.lines) == stored
    assert invoice.totals == (
        {"USD": stored} if any(r.currency for r in records) else {}
    )
    assert sum(line.requests for line in invoice.lines) == len(records)
    assert sum(line.input_tokens for line in invoice.lines) == sum(
        r.input_tokens for r in records
    )
    assert invoice.unpriced_requests == sum(1 for r in records if not r.currency)
    data = json.loads(invoice.to_json())
    assert data["total_micros"] == stored
    assert sum(line["cost_micros"] for line in data["lines"]) == stored
    keys = [(line.model, line.key_id, line.currency) for line in invoice.lines]
    assert keys == sorted(set(keys))
    # The same records in another order: the same bytes.
    again = build_invoice("acme", "2026-11", list(reversed(records)), prices=PRICES)
    assert again.to_json() == invoice.to_json()
    assert again.to_csv() == invoice.to_csv()


def test_a_price_change_mid_month_shows_both_prices() -> None:
    """Records on both sides of a price change: their line lists both prices, oldest first; the total is the stored costs'."""
    records = [
        _priced("llama", "k1", CHANGE - US, (1_000_000, 1_000_000), "a"),
        _priced("llama", "k1", CHANGE, (1_000_000, 1_000_000), "b"),
    ]
    invoice = build_invoice("acme", "2026-11", records, prices=PRICES)
    (line,) = invoice.lines
    assert [p.effective_from for p in line.prices] == [
        datetime(2026, 1, 1, tzinfo=timezone.utc),
        CHANGE,
    ]
    assert line.cost == 750_000 + 500_000
    assert invoice.total == 1_250_000
    data = json.loads(invoice.to_json())
    assert data["total"] == "1.25"
    assert [p["input"] for p in data["lines"][0]["prices"]] == ["0.15", "0.1"]
    rows = list(csv.reader(io.StringIO(invoice.to_csv(), newline="")))
    assert "from 2026-01-01T00:00:00Z" in rows[1][-1]
    assert "from 2026-11-15T12:00:00Z" in rows[1][-1]


def test_costs_come_from_the_records_not_the_table() -> None:
    """A table changed since the records were made changes no amount: the invoice adds the stored costs."""
    record = _priced("qwen", "", NOV, (1_000_000, 0), "a")
    later = PRICES.with_price("qwen", _price(NOV - timedelta(days=1), "9", "9"))
    invoice = build_invoice("acme", "2026-11", [record], prices=later)
    assert invoice.total == 900_000
    assert invoice.lines[0].prices[0].input == 9_000_000


def test_old_records_show_as_unpriced_lines() -> None:
    """Records without a cost or currency have their own lines, marked unpriced, never priced after the fact."""
    records = [
        BillingRecord("acme", 10, 20, NOV, "llama", "old"),
        _priced("llama", "", NOV + US, (1_000_000, 0), "new"),
    ]
    invoice = build_invoice("acme", "2026-11", records, prices=PRICES)
    unpriced, priced = invoice.lines
    assert (unpriced.currency, unpriced.priced, unpriced.cost) == ("", False, 0)
    assert unpriced.prices == ()
    assert priced.currency == "USD"
    data = json.loads(invoice.to_json())
    assert data["lines"][0]["cost"] == "unpriced"
    assert data["unpriced_requests"] == 1
    assert (data["currency"], data["total"]) == ("USD", "0.15")
    rows = list(csv.reader(io.StringIO(invoice.to_csv(), newline="")))
    assert rows[1][INVOICE_CSV_COLUMNS.index("cost")] == "unpriced"


def test_an_empty_invoice_has_a_zero_total() -> None:
    """No records: no lines, a total of 0, in JSON and in CSV (one zero total row)."""
    invoice = build_invoice("nobody", "2026-11", [])
    data = json.loads(invoice.to_json())
    assert (data["lines"], data["total"], data["total_micros"]) == ([], "0", 0)
    assert data["currency"] == ""
    assert "generated_at" not in data
    rows = list(csv.reader(io.StringIO(invoice.to_csv(), newline="")))
    assert rows[0] == list(INVOICE_CSV_COLUMNS)
    assert rows[1][2:] == ["total", "", "", "", "0", "0", "0", "0", "0", ""]


def test_records_outside_the_month_or_of_others_are_left_out() -> None:
    """The month's first and last microseconds are in; the next month's first and another tenant's records are not."""
    inside = [
        _priced("qwen", "", NOV, (1, 0), "first"),
        _priced("qwen", "", DEC - US, (1, 0), "last"),
    ]
    outside = [
        _priced("qwen", "", DEC, (1, 0), "next"),
        _priced("qwen", "", NOV - US, (1, 0), "before"),
        BillingRecord("other", 1, 0, NOV, "qwen", "x", 5, "USD"),
    ]
    invoice = build_invoice("acme", "2026-11", inside + outside)
    assert invoice.lines[0].requests == 2


def test_several_currencies_have_no_single_total() -> None:
    """Records priced in two currencies (the table's currency changed): one total per currency, no grand total."""
    records = [
        BillingRecord("acme", 1, 1, NOV, "m", "a", 5, "USD"),
        BillingRecord("acme", 1, 1, NOV, "m", "b", 7, "EUR"),
    ]
    invoice = build_invoice("acme", "2026-11", records)
    assert (invoice.currency, invoice.total) == (None, None)
    assert invoice.totals == {"EUR": 7, "USD": 5}
    rows = list(csv.reader(io.StringIO(invoice.to_csv(), newline="")))
    assert [r[5] for r in rows if r[2] == "total"] == ["EUR", "USD"]


def test_huge_counts_and_costs_add_exactly() -> None:
    """Costs near 2**63 on many records add exactly (Python integers, no float anywhere)."""
    big = 2**63 - 1
    records = [
        BillingRecord("acme", MAX_TOKENS, MAX_TOKENS, NOV, "m", f"r{i}", big, "USD")
        for i in range(3)
    ]
    invoice = build_invoice("acme", "2026-11", records)
    assert invoice.total == 3 * big
    assert json.loads(invoice.to_json())["total_micros"] == 3 * big


def test_csv_cells_are_spreadsheet_safe() -> None:
    """A model or key id that a spreadsheet would run as a formula is written as text."""
    records = [BillingRecord("acme", 1, 1, NOV, "=HYPERLINK(1)", "a", 0, "", "@k")]
    rows = list(
        csv.reader(io.StringIO(build_invoice("acme", "2026-11", records).to_csv()))
    )
    assert rows[1][3] == "'=HYPERLINK(1)"
    assert rows[1][4] == "'@k"


def test_a_generation_time_is_written_only_when_given() -> None:
    """generated_at appears when given (UTC); a naive one is refused."""
    when = datetime(2026, 12, 1, 9, tzinfo=timezone(timedelta(hours=2)))
    data = json.loads(build_invoice("a", "2026-11", [], generated_at=when).to_json())
    assert data["generated_at"] == "2026-12-01T07:00:00Z"
    with pytest.raises(InvalidConfigError):
        build_invoice("a", "2026-11", [], generated_at=datetime(2026, 12, 1))  # noqa: DTZ001


# -- the command and the admin API --------------------------------------------


@pytest.fixture
def billed(tmp_path: Path) -> Path:
    """An LMDB store holding acme's November records, priced and not."""
    db = tmp_path / "db"
    with LMDBStores.open(db) as stores:
        stores.billing.add(
            [
                _priced(
                    "llama", "k1", NOV + timedelta(days=1), (1_000_000, 500_000), "a"
                ),
                _priced("llama", "k1", CHANGE, (1_000_000, 500_000), "b"),
                _priced("qwen", "k2", CHANGE, (2_000_000, 0), "c"),
                BillingRecord("acme", 10, 20, NOV, "llama", "old"),
            ]
        )
    (tmp_path / "prices.json").write_text(json.dumps(PRICES.to_mapping()))
    return db


def test_the_invoice_command_writes_the_same_bytes_each_time(
    billed: Path, tmp_path: Path
) -> None:
    """zerfoo-cloud invoice gives JSON and CSV whose totals are the stored costs, byte for byte the same on a second run."""
    prices = str(tmp_path / "prices.json")
    first = _cli(billed, "invoice", "acme", "--month", "2026-11", "--prices", prices)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["total_micros"] == 450_000 + 300_000 + 1_800_000
    assert [(line["model"], line["key_id"]) for line in data["lines"]] == [
        ("llama", ""),
        ("llama", "k1"),
        ("qwen", "k2"),
    ]
    assert len(data["lines"][1]["prices"]) == 2
    again = _cli(billed, "invoice", "acme", "--month", "2026-11", "--prices", prices)
    assert again.stdout == first.stdout
    out = tmp_path / "inv.csv"
    made = _cli(
        billed,
        "invoice",
        "acme",
        "--month",
        "2026-11",
        "--format",
        "csv",
        "-o",
        str(out),
    )
    assert made.returncode == 0, made.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(), newline="")))
    assert [r["row"] for r in rows] == ["line", "line", "line", "total"]
    assert rows[-1]["cost_micros"] == str(data["total_micros"])
    assert rows[-1]["cost"] == "2.55"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--month", "2026-13"), "YYYY-MM"),
        (("--month", "2026-11", "--prices", "/no/such.json"), "cannot read"),
        (("--month", "2026-11", "--generated-at", "yesterday"), "ISO 8601"),
    ],
)
def test_the_invoice_command_refuses_bad_input_in_one_line(
    billed: Path, args: tuple[str, ...], says: str
) -> None:
    """A bad month, price file or generation time: exit 1, one line, no traceback, nothing written."""
    done = _cli(billed, "invoice", "acme", *args)
    assert done.returncode == 1
    assert says in done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def _admin_get(
    tenants: TenantManager, meter: TokenMeter, paths: list[str]
) -> list[httpx.Response]:
    """GET each of *paths* from an admin API over *tenants* and *meter*, as the admin."""

    async def calls() -> list[httpx.Response]:
        api = AdminAPI(tenants, meter=meter, admin_key_hashes=[hash_api_key(ADMIN_KEY)])
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(api),
            base_url="http://t",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ) as client:
            return [await client.get(path) for path in paths]

    return asyncio.run(calls())


def test_the_admin_endpoint_serves_the_same_invoice(
    billed: Path, tmp_path: Path
) -> None:
    """GET /admin/tenants/{id}/invoices/{month} gives the command's bytes, as JSON or CSV; bad months are 400, unknown tenants 404."""
    expected = _cli(
        billed,
        "invoice",
        "acme",
        "--month",
        "2026-11",
        "--prices",
        str(tmp_path / "prices.json"),
    ).stdout
    paths = [
        "/admin/tenants/acme/invoices/2026-11",
        "/admin/tenants/acme/invoices/2026-11?format=csv",
        "/admin/tenants/acme/invoices/2026-13",
        "/admin/tenants/acme/invoices/2026-11?format=xml",
        "/admin/tenants/nobody/invoices/2026-11",
        "/admin/tenants/acme/invoices/2026-10",
    ]
    with LMDBStores.open(billed) as stores:
        tenants = TenantManager(stores.tenants)
        tenants.create(TenantConfig("acme", "zc-" + "a" * 40, 0, 0))
        meter = TokenMeter(stores.billing, prices=PRICES)
        got = _admin_get(tenants, meter, paths)
        meter.close()
    assert got[0].status_code == 200
    assert got[0].text == expected
    assert got[1].headers["content-type"].startswith("text/csv")
    assert got[1].text.startswith(",".join(INVOICE_CSV_COLUMNS))
    assert got[2].status_code == 400
    assert got[2].json()["error"]["param"] == "month"
    assert got[3].status_code == 400
    assert got[4].status_code == 404
    assert got[5].json()["total_micros"] == 0


def test_a_tenant_without_records_gets_an_empty_invoice() -> None:
    """A current tenant with no records gets an empty invoice over the memory store."""
    tenants = TenantManager()
    tenants.create(TenantConfig("acme", "zc-" + "b" * 40, 0, 0))
    meter = TokenMeter(MemoryBillingStore())
    (response,) = _admin_get(tenants, meter, ["/admin/tenants/acme/invoices/2026-11"])
    assert response.status_code == 200
    assert response.json()["lines"] == []


def test_the_usage_report_shows_cost_beside_tokens(billed: Path) -> None:
    """usage report gives each row its cost and currency, unpriced records apart; the table shows 'unpriced' and the amount with its currency."""
    november = ("--since", "2026-11-01", "--until", "2026-12-01", "--by", "model")
    report = ("usage", "report", "--tenant", "acme", *november)
    done = _cli(billed, *report, "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [(r["model"], r["currency"], r["cost"], r["cost_micros"]) for r in rows] == [
        ("llama", "", "0", 0),
        ("llama", "USD", "0.75", 750_000),
        ("qwen", "USD", "1.8", 1_800_000),
    ]
    table = _cli(billed, *report)
    assert "COST" in table.stdout
    assert "unpriced" in table.stdout
    assert "0.75 USD" in table.stdout
    assert "CURRENCY" not in table.stdout
