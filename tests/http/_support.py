"""
Helpers for the HTTP tests: real servers in threads, tenant stacks, bare apps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn
import waitress
from waitress import wasyncore

from tests._serving import stop, uvicorn_command
from zerfoo_cloud import (
    AuditEntry,
    AuditLogger,
    CloudServer,
    TenantConfig,
    TenantManager,
    TokenMeter,
    report_usage,
)
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import MemoryAuditStore, MemoryBillingStore

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from zerfoo_cloud.http._types import ASGIApp, Receive, Scope, Send

KEY = "zc-test-key-0123456789"
OTHER_KEY = "zc-other-key-0123456789"
AUTH = {"authorization": f"Bearer {KEY}"}
CHAT = "/v1/chat/completions"


def chat(max_tokens: int = 10, **extra: Any) -> dict[str, Any]:
    """A chat completion request body (prompt estimate: 11 tokens)."""
    return {
        "model": "toy-1",
        "messages": [{"role": "user", "content": "one two three"}],
        "max_tokens": max_tokens,
        **extra,
    }


class Stack:
    """
    A tenant manager, meter, audit logger and their stores, for one test.
    """

    def __init__(self, *, lmdb: Path | None = None, clock: Any = time.time) -> None:
        self.stores: LMDBStores | None = None
        if lmdb is not None:
            self.stores = LMDBStores.open(lmdb)
            self.tenants = TenantManager(
                self.stores.tenants, limits=self.stores.limits, clock=clock
            )
        else:
            self.tenants = TenantManager(clock=clock)
        self.billing = MemoryBillingStore()
        self.audit_store = MemoryAuditStore()
        self.meter = TokenMeter(self.billing)
        self.audit = AuditLogger(self.audit_store)

    def tenant(
        self,
        tenant_id: str = "acme",
        key: str = KEY,
        *,
        rate_limit: int = 0,
        token_budget: int = 0,
        max_concurrent_requests: int = 0,
        model_allow_list: tuple[str, ...] = (),
    ) -> None:
        """Create a tenant."""
        self.tenants.create(
            TenantConfig(
                tenant_id,
                key,
                rate_limit=rate_limit,
                token_budget=token_budget,
                max_concurrent_requests=max_concurrent_requests,
                model_allow_list=model_allow_list,
            )
        )

    def server(self, app: Any, **options: Any) -> CloudServer:
        """Wrap *app*."""
        return CloudServer(app, self.tenants, self.meter, audit=self.audit, **options)

    def records(self, server: CloudServer) -> list[tuple[str, int, int]]:
        """The billing records so far, as (tenant, input, output)."""
        assert server.close(10)
        return [
            (r.tenant_id, r.input_tokens, r.output_tokens) for r in self.billing.all()
        ]

    def audits(self, server: CloudServer) -> list[AuditEntry]:
        """The audit entries so far."""
        assert server.close(10)
        return self.audit_store.all()

    def close(self) -> None:
        """Close the stores."""
        if self.stores is not None:
            self.stores.close()


class OrderedMeter(TokenMeter):
    """A real TokenMeter (memory store) that logs each flush in *log*."""

    def __init__(self, log: list[str]) -> None:
        super().__init__(MemoryBillingStore())
        self.log = log

    def flush(self, timeout: float | None = None) -> None:
        """Log, then flush."""
        self.log.append("flush")
        super().flush(timeout)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll *predicate* until it is true or *timeout* passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def _listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with contextlib.closing(_listener()) as sock:
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serve_asgi(app: Any, *, lifespan: bool = False) -> Iterator[str]:
    """
    Serve *app* with uvicorn in a thread; yield its base URL. With
    *lifespan*, *app* gets the ASGI lifespan events (an app that opens
    connections of its own closes them on shutdown).
    """
    sock = _listener()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="critical",
        lifespan="on" if lifespan else "off",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        assert wait_until(lambda: server.started, 10), "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        assert not thread.is_alive()


@contextlib.contextmanager
def uvicorn_workers(target: str, workers: int, env: dict[str, str]) -> Iterator[str]:
    """
    Serve *target* (``module:app``, from the checkout) with ``uvicorn
    --workers`` *workers* processes, *env* over this environment; yield the
    base URL once ``/healthz`` answers, and stop them after.
    """
    port = free_port()
    environ = {**os.environ, **env}
    environ.pop("COVERAGE_PROCESS_START", None)
    options = ["--app-dir", str(Path(__file__).resolve().parents[2])]
    options += ["--workers", str(workers), "--host", "127.0.0.1"]
    options += ["--lifespan", "off", "--log-level", "warning"]
    proc = subprocess.Popen(
        uvicorn_command(target, port, *options),
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "uvicorn did not start"
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base
    finally:
        stop(proc)
        if proc.stderr is not None:
            proc.stderr.close()


@contextlib.contextmanager
def serve_wsgi(app: Any, *, threads: int = 8) -> Iterator[str]:
    """Serve *app* with waitress in a thread; yield its base URL."""
    server = waitress.create_server(
        app, host="127.0.0.1", port=0, threads=threads, channel_timeout=10
    )
    port = server.effective_port
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        # Close every channel (keep-alive ones too) from the loop's own thread;
        # the loop ends when nothing is left in its map.
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(10)
        server.task_dispatcher.shutdown()
        assert not thread.is_alive()


# -- bare apps ----------------------------------------------------------------


def json_body(usage: dict[str, int] | None, **extra: Any) -> bytes:
    """A chat completion body with *usage*."""
    doc: dict[str, Any] = {"object": "chat.completion", "choices": [], **extra}
    if usage is not None:
        doc["usage"] = usage
    return json.dumps(doc).encode()


async def send_json(send: Send, body: bytes = b"{}", status: int = 200) -> None:
    """Send a whole JSON response."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def start_event_stream(send: Send) -> None:
    """Start a 200 ``text/event-stream`` response."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream")],
        }
    )


def asgi_json_app(
    body: bytes = b"{}", status: int = 200, *, report: tuple[int, int] | None = None
) -> ASGIApp:
    """An ASGI app answering every request with *body*."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        if report is not None:
            report_usage(scope, *report)
        await send_json(send, body, status)

    return app


def sse_events(
    tokens: int, usage: tuple[int, int] | None, *, chunk_usage_null: bool = True
) -> list[bytes]:
    """The events of a streamed chat completion of *tokens* tokens."""
    events = []
    for i in range(tokens):
        chunk: dict[str, Any] = {
            "choices": [{"index": 0, "delta": {"content": f"t{i} "}}]
        }
        if chunk_usage_null:
            chunk["usage"] = None
        events.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    if usage is not None:
        final = {
            "choices": [],
            "usage": {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": sum(usage),
            },
        }
        events.append(b"data: " + json.dumps(final).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def asgi_sse_app(
    events: list[bytes],
    *,
    gate: asyncio.Event | None = None,
    fail_after: int | None = None,
    delay: float = 0.0,
) -> ASGIApp:
    """An ASGI app streaming *events*, one body message each."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        await start_event_stream(send)
        for i, event in enumerate(events):
            if fail_after is not None and i == fail_after:
                msg = "the model crashed"
                raise RuntimeError(msg)
            if gate is not None:
                await gate.wait()
            if delay:
                await asyncio.sleep(delay)
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def wsgi_json_app(
    body: bytes = b"{}",
    status: str = "200 OK",
    *,
    report: tuple[int, int] | None = None,
) -> Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]]:
    """A WSGI app answering every request with *body*."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ["wsgi.input"].read()
        if report is not None:
            report_usage(environ, *report)
        start_response(
            status,
            [("content-type", "application/json"), ("content-length", str(len(body)))],
        )
        return [body]

    return app
