"""
``/admin/prices``: the price table read, replaced (If-Match on its
version) and added to through the admin API; refused changes are one-line
OpenAI-shaped errors and change nothing; every call is audited with its
actor.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

from tests.admin._client import Client
from tests.admin.conftest import admin_headers, issue_session
from tests.conftest import FakeClock
from zerfoo_cloud import TenantManager
from zerfoo_cloud.http.admin import AdminAPI, SessionSigner
from zerfoo_cloud.price_book import PriceBook
from zerfoo_cloud.pricing import PriceTable
from zerfoo_cloud.stores.memory import MemoryAuditStore, MemoryPriceStore

#: The table most tests start from: prices in force since 2020.
TABLE: dict[str, Any] = {
    "currency": "USD",
    "models": {
        "llama": [
            {"effective_from": "2020-01-01T00:00:00Z", "input": "0.15", "output": "0.6"}
        ]
    },
}


@pytest.fixture
def book(clock: FakeClock) -> PriceBook:
    """A price book on a memory store, on the test clock."""
    return PriceBook(MemoryPriceStore(), clock=clock)


@pytest.fixture
def prices_client(make_api: Callable[..., AdminAPI], book: PriceBook) -> Client:
    """A client of an admin API managing *book*."""
    return Client(make_api(prices=book))


def put(client: Client, body: object, version: int | str | None, **kw: Any) -> Any:
    """PUT *body* to /admin/prices, If-Match *version* (quoted when an int)."""
    headers = admin_headers()
    if version is not None:
        headers["If-Match"] = f'"{version}"' if isinstance(version, int) else version
    return client.request("PUT", "/admin/prices", headers=headers, json=body, **kw)


def one_line_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The error of *response*, checked: *status*, *code*, OpenAI's shape, one line."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert "\n" not in error["message"]
    return dict(error)


def test_a_table_is_stored_and_read_back_with_its_version(
    prices_client: Client, book: PriceBook
) -> None:
    """GET before any table: version 0, no table; PUT If-Match "0" stores it as version 1, the ETag follows."""
    empty = prices_client.get("/admin/prices", headers=admin_headers())
    assert empty.status_code == 200
    assert empty.headers["etag"] == '"0"'
    assert empty.json() == {
        "object": "price_table",
        "version": 0,
        "read_only": False,
        "table": None,
    }
    stored = put(prices_client, TABLE, 0)
    assert stored.status_code == 200, stored.text
    assert stored.headers["etag"] == '"1"'
    assert stored.json()["version"] == 1
    again = prices_client.get("/admin/prices", headers=admin_headers())
    assert again.json()["table"] == PriceTable.from_mapping(TABLE).to_mapping()
    assert book.current().table == PriceTable.from_mapping(TABLE)


def test_if_match_is_required_and_checked(
    prices_client: Client, book: PriceBook
) -> None:
    """No If-Match: 428; a malformed one: 400; a stale one: 412 (the second admin never overwrites the first)."""
    one_line_error(put(prices_client, TABLE, None), 428, "precondition_required")
    for bad in ("0", '"-1"', '"x"', '"1", "2"', 'W/"0"', '"1234567890123456789"'):
        error = one_line_error(put(prices_client, TABLE, bad), 400, "invalid_header")
        assert error["param"] == "If-Match"
    assert put(prices_client, TABLE, 0).status_code == 200
    one_line_error(put(prices_client, TABLE, 0), 412, "price_table_changed")
    one_line_error(put(prices_client, TABLE, 7), 412, "price_table_changed")
    assert book.current().version == 1


def _rate(value: object) -> dict[str, Any]:
    entry = {"effective_from": "2030-01-01T00:00:00Z", "input": value, "output": "1"}
    return {"currency": "USD", "models": {"llama": [entry]}}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (_rate("-0.15"), "models['llama'][0].input"),
        (_rate(0.15), "models['llama'][0].input"),
        (_rate("1e3"), "models['llama'][0].input"),
        (_rate("0.0000001"), "models['llama'][0].input"),
        (_rate("1000000.000001"), "models['llama'][0].input"),
        (_rate(1_000_001), "models['llama'][0].input"),
        ({**TABLE, "currency": "usd"}, "currency"),
        ({**TABLE, "currency": "XXX"}, "currency"),
        ({"models": {}}, "currency"),
        ({**TABLE, "extra": 1}, "extra"),
        ({**TABLE, "models": []}, "models"),
        ({"currency": "USD", "models": {"llama": []}}, "models['llama']"),
        (
            {
                "currency": "USD",
                "models": {
                    "llama": [
                        {"effective_from": "2030-01-01", "input": "1", "output": "1"}
                    ]
                },
            },
            "models['llama'][0].effective_from",
        ),
    ],
)
def test_bad_tables_are_one_line_400s_and_change_nothing(
    prices_client: Client, book: PriceBook, body: object, param: str
) -> None:
    """Negative, float, exponent, too many places, past the maximum, unknown currency, unknown keys, missing parts: 400 naming the field; nothing stored."""
    error = one_line_error(put(prices_client, body, 0), 400, "invalid_field")
    assert error["param"] == param
    assert book.current().version == 0


def test_the_highest_price_is_accepted_and_one_micro_unit_more_refused(
    prices_client: Client, book: PriceBook
) -> None:
    """MAX_PRICE_MICROS ("1000000" a million tokens) is stored; "1000000.000001" is not."""
    assert put(prices_client, _rate("1000000"), 0).status_code == 200
    one_line_error(put(prices_client, _rate("1000000.000001"), 1), 400, "invalid_field")
    table = book.current().table
    assert table is not None
    assert table.models["llama"][0].input == 1_000_000_000_000


@pytest.mark.parametrize(
    "body", [b"", b"[]", b"{", b'{"currency": NaN}', b"\xff", b"null"]
)
def test_malformed_bodies_are_400(
    prices_client: Client, book: PriceBook, body: bytes
) -> None:
    """Bodies that are not a JSON object: 400 invalid_json, nothing stored."""
    headers = {**admin_headers(), "If-Match": '"0"'}
    response = prices_client.request(
        "PUT", "/admin/prices", headers=headers, content=body
    )
    one_line_error(response, 400, "invalid_json")
    assert book.current().version == 0


def test_changes_that_rewrite_the_past_are_refused(
    prices_client: Client, book: PriceBook
) -> None:
    """A currency change, a price in force changed, a new price in the past: 400, version unchanged."""
    put(prices_client, TABLE, 0)
    euro = {**TABLE, "currency": "EUR"}
    assert (
        one_line_error(put(prices_client, euro, 1), 400, "invalid_field")["param"]
        == "currency"
    )
    cheaper = {
        "currency": "USD",
        "models": {
            "llama": [
                {
                    "effective_from": "2020-01-01T00:00:00Z",
                    "input": "0.1",
                    "output": "0.6",
                }
            ]
        },
    }
    one_line_error(put(prices_client, cheaper, 1), 400, "invalid_field")
    backdated = PriceTable.from_mapping(TABLE).to_mapping()
    backdated["models"]["qwen"] = [
        {"effective_from": "2021-01-01T00:00:00Z", "input": "1", "output": "1"}
    ]
    one_line_error(put(prices_client, backdated, 1), 400, "invalid_field")
    assert book.current().version == 1


def test_post_adds_one_price_from_now_or_later(
    prices_client: Client, book: PriceBook, clock: FakeClock
) -> None:
    """POST /admin/prices adds one price (201, new ETag); "now" is the server's moment; a past one is 400."""
    put(prices_client, TABLE, 0)
    later = {
        "model": "llama",
        "effective_from": "2031-01-01T00:00:00Z",
        "input": "0.1",
        "output": "0.4",
    }
    added = prices_client.post("/admin/prices", headers=admin_headers(), json=later)
    assert added.status_code == 201, added.text
    assert added.headers["etag"] == '"2"'
    now = {"model": "new/model", "effective_from": "now", "input": "2", "output": "3"}
    added = prices_client.post("/admin/prices", headers=admin_headers(), json=now)
    assert added.status_code == 201, added.text
    table = book.current().table
    assert table is not None
    start = datetime.fromtimestamp(clock(), timezone.utc)
    assert table.models["new/model"][0].effective_from == start
    past = {**later, "effective_from": "2021-01-01T00:00:00Z"}
    response = prices_client.post("/admin/prices", headers=admin_headers(), json=past)
    one_line_error(response, 400, "invalid_field")
    for body, code in (
        ({"effective_from": "now", "input": "1", "output": "1"}, "missing_field"),
        ({**later, "model": 5}, "invalid_field"),
        ({**later, "colour": "red"}, "unknown_field"),
    ):
        response = prices_client.post(
            "/admin/prices", headers=admin_headers(), json=body
        )
        one_line_error(response, 400, code)
    assert book.current().version == 3


def test_post_before_any_table_is_400(prices_client: Client) -> None:
    """Adding a price needs a table (its currency) first."""
    body = {"model": "m", "effective_from": "now", "input": "1", "output": "1"}
    response = prices_client.post("/admin/prices", headers=admin_headers(), json=body)
    assert one_line_error(response, 400, "invalid_field")["param"] == "prices"


def test_a_price_file_makes_the_table_read_only(
    make_api: Callable[..., AdminAPI], clock: FakeClock
) -> None:
    """With serve --prices FILE: GET shows the file's table (read_only, version 0); PUT and POST are 409."""
    fixed = PriceTable.from_mapping(TABLE)
    client = Client(
        make_api(prices=PriceBook(MemoryPriceStore(), fixed=fixed, clock=clock))
    )
    shown = client.get("/admin/prices", headers=admin_headers()).json()
    assert (shown["read_only"], shown["version"]) == (True, 0)
    assert shown["table"] == fixed.to_mapping()
    one_line_error(put(client, TABLE, 0), 409, "prices_read_only")
    body = {"model": "m", "effective_from": "now", "input": "1", "output": "1"}
    response = client.post("/admin/prices", headers=admin_headers(), json=body)
    one_line_error(response, 409, "prices_read_only")


def test_without_a_price_book_the_routes_are_404(client: Client) -> None:
    """An admin API given no prices answers 404 prices_not_configured."""
    response = client.get("/admin/prices", headers=admin_headers())
    one_line_error(response, 404, "prices_not_configured")


def test_sessions_may_not_touch_prices(
    prices_client: Client, sessions: SessionSigner, tenants: TenantManager
) -> None:
    """A tenant admin's session gets 403 on every price route."""
    token = issue_session(sessions, tenants)
    headers = {"Authorization": f"Bearer {token}", "If-Match": '"0"'}
    for method in ("GET", "PUT", "POST"):
        response = prices_client.request(
            method, "/admin/prices", headers=headers, json=TABLE
        )
        one_line_error(response, 403, "forbidden")


def test_every_price_call_is_audited_with_its_actor_and_version(
    prices_client: Client, audit_store: MemoryAuditStore
) -> None:
    """The audit entry says prices (and the version stored) and who called."""
    prices_client.get("/admin/prices", headers=admin_headers())
    put(prices_client, TABLE, 0)
    put(prices_client, TABLE, 0)
    resources = [(e.resource, e.status_code, e.tenant_id) for e in audit_store.all()]
    actor = resources[0][0].split(" by ")[1]
    assert actor.startswith("admin:")
    assert resources == [
        (f"prices by {actor}", 200, ""),
        (f"prices/v1 by {actor}", 200, ""),
        (f"prices by {actor}", 412, ""),
    ]
    assert [e.path for e in audit_store.all()] == ["/admin/prices"] * 3


def test_the_documented_currencies_are_the_known_ones() -> None:
    """docs/openapi.yaml's Currency enum is exactly CURRENCIES."""
    from tests.admin.test_openapi import load
    from zerfoo_cloud.pricing import CURRENCIES

    assert set(load()["components"]["schemas"]["Currency"]["enum"]) == CURRENCIES
