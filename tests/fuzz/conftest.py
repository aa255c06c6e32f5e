"""
One real server per kind and module: the ASGI app, the WSGI app, and the
proxy in front of a real upstream, each behind `CloudServer` on its own LMDB
stores, with a frozen clock for the tenants' limits.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import pytest

from tests._sockets import connections_to
from tests.fuzz._backend import ASGIBackend, CountingApp, WSGIBackend
from tests.fuzz._harness import FrozenClock, Harness
from tests.fuzz._servers import serve_asgi, serve_wsgi
from zerfoo_cloud import AuditLogger, CloudServer, TenantManager, TokenMeter
from zerfoo_cloud.http.proxy import UpstreamProxy
from zerfoo_cloud.stores.lmdb import LMDBStores

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@contextlib.contextmanager
def _stack(
    folder: Path,
) -> Iterator[tuple[LMDBStores, TenantManager, TokenMeter, AuditLogger]]:
    stores = LMDBStores.open(folder)
    tenants = TenantManager(stores.tenants, limits=stores.limits, clock=FrozenClock())
    meter = TokenMeter(stores.billing)
    audit = AuditLogger(stores.audit)
    try:
        yield stores, tenants, meter, audit
    finally:
        meter.close()
        audit.close()
        stores.close()


def _harness(
    kind: str, server: CloudServer, address: tuple[str, int], stack: Any, **kw: Any
) -> Harness:
    stores, tenants, meter, audit = stack
    return Harness(kind, server, address, stores, tenants, meter, audit, **kw)


@pytest.fixture(scope="module")
def asgi_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """An ASGI app behind `CloudServer`, in uvicorn."""
    backend = ASGIBackend()
    with _stack(tmp_path_factory.mktemp("asgi")) as stack:
        server = CloudServer(backend, stack[1], stack[2], audit=stack[3])
        with serve_asgi(server.handler()) as address:
            yield _harness(
                "asgi",
                server,
                address,
                stack,
                expect=backend.expect,
                app_calls=lambda name: len(backend.bodies(name)),
                upstream_bodies=backend.bodies,
            )
        server.close(30)


@pytest.fixture(scope="module")
def wsgi_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """A WSGI app behind `CloudServer`, in waitress."""
    backend = WSGIBackend()
    with _stack(tmp_path_factory.mktemp("wsgi")) as stack:
        server = CloudServer(backend, stack[1], stack[2], audit=stack[3])
        with serve_wsgi(server.handler()) as address:
            yield _harness(
                "wsgi",
                server,
                address,
                stack,
                expect=backend.expect,
                app_calls=lambda name: len(backend.bodies(name)),
                upstream_bodies=backend.bodies,
            )
        server.close(30)


@pytest.fixture(scope="module")
def proxy_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """`UpstreamProxy` behind `CloudServer` in uvicorn, to a real upstream."""
    backend = ASGIBackend()
    with (
        serve_asgi(backend) as upstream,
        _stack(tmp_path_factory.mktemp("proxy")) as stack,
    ):
        proxy = CountingApp(UpstreamProxy(f"http://{upstream[0]}:{upstream[1]}"))
        server = CloudServer(
            proxy, stack[1], stack[2], audit=stack[3], interface="asgi"
        )
        with serve_asgi(server.handler()) as address:
            yield _harness(
                "proxy",
                server,
                address,
                stack,
                expect=backend.expect,
                app_calls=proxy.count,
                upstream_bodies=backend.bodies,
                proxy=True,
            )
        server.close(30)
        # The lifespan's shutdown closed the proxy's pooled connections.
        assert connections_to(upstream[1]) == 0
