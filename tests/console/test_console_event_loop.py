"""
The console never reads or writes a store on the event loop: a store that
may be PostgreSQL on the network is only called from worker threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.console._browser import Browser
from tests.console._routes import concrete, tenant_routes
from tests.console.conftest import sign_in
from zerfoo_cloud import TenantConfig, TenantManager
from zerfoo_cloud.http.admin import AdminAPI, SessionSigner
from zerfoo_cloud.http.console import mount_console
from zerfoo_cloud.sso.roles import Role
from zerfoo_cloud.stores.memory import MemoryTenantStore


def _on_the_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class ThreadCheckedStore(MemoryTenantStore):
    """A memory store that records every call made on an event loop."""

    def __init__(self) -> None:
        super().__init__()
        self.on_loop: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        found = super().__getattribute__(name)
        if callable(found) and not name.startswith("_") and _on_the_loop():
            super().__getattribute__("on_loop").append(name)
        return found


@pytest.fixture
def checked() -> tuple[ThreadCheckedStore, Callable[[Role], Browser]]:
    """A console over the checked store, and browsers of each role."""
    store = ThreadCheckedStore()
    tenants = TenantManager(store)
    tenants.create(TenantConfig("acme", "zc-acme-0123456789abcdefghijklmnopqr", 5, 5))
    sessions = SessionSigner(b"0123456789abcdef0123456789abcdef")
    api = AdminAPI(tenants, sessions=sessions)
    mount_console(api)
    store.on_loop.clear()

    def browse(role: Role) -> Browser:
        return sign_in(Browser(api), sessions, tenants, role)

    return store, browse


@pytest.mark.parametrize("role", [Role.ADMIN, Role.OPERATOR])
@pytest.mark.parametrize("route", tenant_routes("GET"))
def test_no_page_calls_the_store_on_the_event_loop(
    checked: tuple[ThreadCheckedStore, Callable[[Role], Browser]],
    route: str,
    role: Role,
) -> None:
    """Every page's store reads happen in worker threads."""
    store, browse = checked
    browse(role).get(concrete(route, "acme"))
    assert store.on_loop == []


def test_forms_call_the_store_off_the_event_loop(
    checked: tuple[ThreadCheckedStore, Callable[[Role], Browser]],
) -> None:
    """Creating a key writes the store from a worker thread."""
    store, browse = checked
    browser = browse(Role.ADMIN)
    made = browser.submit(
        "/console/t/acme/keys", "/console/t/acme/keys", {"name": "threaded"}
    )
    assert made.status_code == 201
    assert store.on_loop == []


def test_the_check_sees_a_call_made_on_the_loop() -> None:
    """The store does notice a call from a coroutine (so the tests above can fail)."""
    store = ThreadCheckedStore()

    async def read() -> None:
        store.get("acme")

    asyncio.run(read())
    assert store.on_loop == ["get"]
