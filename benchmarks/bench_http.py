"""
The cost of the HTTP layer: in-process overhead per request, and throughput
through uvicorn, each against the bare app in the same run.

1. In process, no server: the full stack (authentication, request, token and
   concurrency limits, usage parsing, the billing record, the audit entry,
   all in LMDB) around a minimal app, against the same app bare. ASGI and
   WSGI, a JSON response and a 100-chunk SSE stream; billing and audit
   written from the store's writer process (``LMDBStores.open(path,
   writer_process=True)``, what ``zerfoo-cloud serve`` uses) and from writer
   threads. The time includes making the
   accounting durable (the queues are flushed inside the measurement).
   Bare and wrapped runs alternate `ROUNDS` times; the best of each is the
   figure, the median shows the spread. Target: under 50 µs added per
   non-streaming request.
2. Through uvicorn (one worker process) with a keep-alive load generator in a
   second process: requests per second wrapped against bare, for a minimal
   app (the harshest case: the app costs almost nothing), the toy OpenAI app
   of ``examples/`` (JSON in and out, a toy model), and the minimal app
   behind model calls of `MODEL_MILLISECONDS` that keep the CPU free, as a
   GPU does. Target: at least 85 % of bare. Beside them, the same app
   behind `passthrough`, the least any ASGI middleware that keeps the HTTP
   contract does (replay the body, add the six ``x-ratelimit-*`` headers):
   its ratio is the ceiling that no middleware written in Python reaches
   past, and the added microseconds of server time per request tell what
   the ratio is for an app of any cost.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from zerfoo_cloud import (
    AuditLogger,
    CloudServer,
    TenantConfig,
    TenantManager,
    TokenMeter,
)
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import MemoryAuditStore, MemoryBillingStore

KEY = "zc-bench-key-00000000000000000000"
#: How long the simulated models of `model_app` take per request, in ms.
MODEL_MILLISECONDS = (1, 5)
ROOT = Path(__file__).resolve().parents[1]
CHUNKS = 100
REQUEST = json.dumps(
    {
        "model": "toy-1",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 64,
    }
).encode()
STREAM_REQUEST = json.dumps({**json.loads(REQUEST), "stream": True}).encode()
RESPONSE = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "toy-1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Paris is the capital."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 14, "completion_tokens": 6, "total_tokens": 20},
    }
).encode()


def _sse_events() -> list[bytes]:
    base = {"id": "c", "object": "chat.completion.chunk", "model": "toy-1"}
    events = [
        b"data: "
        + json.dumps(
            {
                **base,
                "choices": [{"index": 0, "delta": {"content": "tok "}}],
                "usage": None,
            }
        ).encode()
        + b"\n\n"
        for _ in range(CHUNKS)
    ]
    usage = {
        "prompt_tokens": 14,
        "completion_tokens": CHUNKS,
        "total_tokens": 14 + CHUNKS,
    }
    events.append(
        b"data: "
        + json.dumps({**base, "choices": [], "usage": usage}).encode()
        + b"\n\n"
    )
    events.append(b"data: [DONE]\n\n")
    return events


SSE_EVENTS = _sse_events()
JSON_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(RESPONSE)).encode()),
]
SSE_HEADERS = [(b"content-type", b"text/event-stream")]


# -- bare apps ------------------------------------------------------------------


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    """A minimal OpenAI-like ASGI app: JSON, or SSE when the body asks to stream."""
    body = (await receive())["body"]
    if b'"stream": true' in body:
        await send(
            {"type": "http.response.start", "status": 200, "headers": SSE_HEADERS}
        )
        for event in SSE_EVENTS:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": RESPONSE})


def model_app(milliseconds: float) -> Any:
    """`asgi_app` behind a model call that takes *milliseconds* off the CPU (a GPU)."""
    seconds = milliseconds / 1000

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(seconds)
        await asgi_app(scope, receive, send)

    return app


def wsgi_app(environ: Any, start_response: Any) -> Iterable[bytes]:
    """The WSGI twin of `asgi_app`."""
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    if b'"stream": true' in body:
        start_response("200 OK", [("content-type", "text/event-stream")])
        return SSE_EVENTS
    start_response(
        "200 OK",
        [("content-type", "application/json"), ("content-length", str(len(RESPONSE)))],
    )
    return [RESPONSE]


#: The rate-limit headers `passthrough` adds, as many and as long as the
#: wrapped app's.
PASSTHROUGH_HEADERS = [
    (b"x-ratelimit-limit-requests", b"1000000000000"),
    (b"x-ratelimit-remaining-requests", b"999999999999"),
    (b"x-ratelimit-reset-requests", b"1ms"),
    (b"x-ratelimit-limit-tokens", b"1000000000000000"),
    (b"x-ratelimit-remaining-tokens", b"999999999999936"),
    (b"x-ratelimit-reset-tokens", b"1ms"),
]


def passthrough(app: Any) -> Any:
    """
    *app* behind the least an ASGI middleware keeping the HTTP contract does:
    read the request body and replay it, and add the ``x-ratelimit-*``
    headers to the response. No authentication, limits or accounting.
    """

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return message

        async def add_headers(event: Any) -> None:
            if event["type"] == "http.response.start":
                headers = [*event.get("headers", ()), *PASSTHROUGH_HEADERS]
                event = {**event, "headers": headers}
            await send(event)

        await app(scope, replay, add_headers)

    return middleware


# -- the stack ------------------------------------------------------------------


def build(
    app: Any, folder: Path, *, writer_process: bool = True, durable: bool = True
) -> tuple[CloudServer, LMDBStores]:
    """
    Wrap *app* with every part enabled, on LMDB stores: billing and audit
    written from the store's writer process (*writer_process*, as
    ``zerfoo-cloud serve`` does) or from writer threads; each answer ends
    once its records are committed unless *durable* is false.
    """
    stores = LMDBStores.open(folder, writer_process=writer_process)
    tenants = TenantManager(stores.tenants, limits=stores.limits)
    if not any(c.id == "bench" for c in tenants.list()):
        tenants.create(
            TenantConfig(
                "bench",
                KEY,
                rate_limit=10**12,
                token_budget=10**15,
                max_concurrent_requests=10**6,
            )
        )
    meter = TokenMeter(stores.billing)
    logger = AuditLogger(stores.audit)
    return CloudServer(app, tenants, meter, audit=logger, durable=durable), stores


# -- in process -----------------------------------------------------------------


def _asgi_per_request(app: Any, body: bytes, n: int, drain: Callable[[], Any]) -> float:
    template = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", f"Bearer {KEY}".encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(message: Any) -> None:
        pass

    async def run() -> float:
        for _ in range(min(200, n)):  # warm up
            await app(dict(template), receive, send)
        drain()
        start = time.perf_counter()
        for _ in range(n):
            await app(dict(template), receive, send)
        drain()
        return (time.perf_counter() - start) / n

    return asyncio.run(run())


def _wsgi_per_request(app: Any, body: bytes, n: int, drain: Callable[[], Any]) -> float:
    import io

    template: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/v1/chat/completions",
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": f"Bearer {KEY}",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "8000",
        "wsgi.url_scheme": "http",
    }

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        return None

    def once() -> None:
        environ = dict(template)
        environ["wsgi.input"] = io.BytesIO(body)
        result = app(environ, start_response)
        for _ in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()

    for _ in range(min(200, n)):
        once()
    drain()
    start = time.perf_counter()
    for _ in range(n):
        once()
    drain()
    return (time.perf_counter() - start) / n


def _each(fn: Callable[[], Any], n: int = 3000) -> float:
    for _ in range(200):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def store_costs(folder: Path) -> None:
    """Print what each LMDB tenant and limit operation of a request costs."""
    server, stores = build(asgi_app, folder)
    try:
        tenants = server.tenants
        tenant = tenants.get_by_api_key(KEY)

        def admit() -> None:
            tenant.begin_request(10)

        def settle() -> None:
            tenant.end_request(10, 9)

        costs = {
            "key lookup (cached)": _each(lambda: tenants.get_by_api_key(KEY)),
            "admission (slot, request, tokens)": _each(admit),
            "settlement (refund, slot)": _each(settle),
        }
    finally:
        _close(server, stores)
    for name, micros in costs.items():
        print(f"  {name:35}{micros:9.1f} µs")
    print(f"  {'sum':35}{sum(costs.values()):9.1f} µs")


def build_light(app: Any) -> CloudServer:
    """Wrap *app* with memory stores and a tenant without limits: the
    middleware's own cost (authentication, body reading, usage parsing,
    records) without store round trips, and without the durable wait
    (`bench_durable` measures that)."""
    tenants = TenantManager()
    tenants.create(TenantConfig("bench", KEY, rate_limit=0, token_budget=0))
    meter = TokenMeter(MemoryBillingStore())
    return CloudServer(
        app, tenants, meter, audit=AuditLogger(MemoryAuditStore()), durable=False
    )


def middleware_only() -> None:
    """Print the middleware's own cost per JSON request."""
    print(f"{'':27}{'bare µs':>9}{'wrapped µs':>12}{'added µs':>10}{'ratio':>7}")
    for interface, bare, measure in (
        ("asgi", asgi_app, _asgi_per_request),
        ("wsgi", wsgi_app, _wsgi_per_request),
    ):
        server = build_light(bare)
        base = measure(bare, REQUEST, 3000, lambda: None)
        wrapped = measure(server.handler(), REQUEST, 3000, server.close)
        server.close()
        print(
            f"{interface + ' json':27}{base * 1e6:9.1f}{wrapped * 1e6:12.1f}"
            f"{(wrapped - base) * 1e6:10.1f}{wrapped / base:7.2f}"
        )


#: Bare and wrapped runs alternate this many times; the best and the median
#: of each are printed (the best is the least disturbed by other load).
ROUNDS = 5


def _children_cpu() -> float | None:
    """Seconds of CPU the child processes running now have used (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        pids = []
        for task in Path("/proc/self/task").iterdir():
            pids += (task / "children").read_text().split()
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    except OSError:
        return None
    return total


def _rounds(
    measure: Callable[..., float], bare: Any, server: CloudServer, body: bytes, n: int
) -> tuple[list[float], list[float], float | None]:
    # Bare and wrapped µs per request, and the writer processes' CPU µs per
    # wrapped request over all rounds (None where it cannot be read).
    base, wrapped = [], []
    writers: float | None = 0.0
    # Start the writer processes first: their start is no per-request cost.
    measure(server.handler(), body, 10, server.close)
    for _ in range(ROUNDS):
        base.append(measure(bare, body, n, lambda: None) * 1e6)
        before = _children_cpu()
        wrapped.append(measure(server.handler(), body, n, server.close) * 1e6)
        after = _children_cpu()
        if writers is not None and before is not None and after is not None:
            writers += after - before
        else:
            writers = None
    return base, wrapped, None if writers is None else writers / n / ROUNDS * 1e6


def in_process(folder: Path) -> None:
    """Print the per-request overhead table, best and median of `ROUNDS`."""
    print(
        f"{'':34}{'bare µs':>9}{'wrapped µs':>12}{'ratio':>7}{'added µs':>10}"
        f"{'median added':>14}{'writers CPU µs':>16}"
    )
    for process, writers in ((True, "a writer process"), (False, "writer threads")):
        print(f"  billing and audit from {writers}:")
        for interface, bare, measure in (
            ("asgi", asgi_app, _asgi_per_request),
            ("wsgi", wsgi_app, _wsgi_per_request),
        ):
            # One request at a time: a durable answer would wait for a
            # commit of its own, and time the disk; the drain inside the
            # measurement makes every record durable all the same.
            server, stores = build(bare, folder, writer_process=process, durable=False)
            try:
                for label, body, n in (
                    ("json", REQUEST, 10_000),
                    (f"sse {CHUNKS} chunks", STREAM_REQUEST, 1_000),
                ):
                    base, wrapped, cpu = _rounds(measure, bare, server, body, n)
                    shown = "" if cpu is None or not process else f"{cpu:16.1f}"
                    print(
                        f"  {interface + ' ' + label:32}{min(base):9.1f}"
                        f"{min(wrapped):12.1f}{min(wrapped) / min(base):7.1f}"
                        f"{min(wrapped) - min(base):10.1f}"
                        f"{statistics.median(wrapped) - statistics.median(base):14.1f}"
                        f"{shown}"
                    )
            finally:
                _close(server, stores)
    print(
        "  target: under 50 µs added per JSON request; writers CPU: what the"
        " writer processes spend per request, on other cores"
    )


def _close(server: CloudServer, stores: LMDBStores) -> None:
    server.meter.close()
    if server.audit is not None:
        server.audit.close()
    stores.close()


# -- through uvicorn --------------------------------------------------------------


def served_app() -> Any:
    """The app uvicorn serves (``--factory``): bare or wrapped, by environment."""
    app: Any = asgi_app
    name = os.environ.get("ZC_BENCH_APP", "")
    if name.startswith("model"):
        app = model_app(float(name[len("model") :]))
    elif name == "toy":
        sys.path.insert(0, str(ROOT / "examples"))
        from toy_openai_app import make_app

        app = make_app()
    mode = os.environ.get("ZC_BENCH_MODE")
    if mode == "bare":
        return app
    if mode == "passthrough":
        return passthrough(app)
    server, _ = build(
        app, Path(os.environ["ZC_BENCH_DB"]), durable=mode != "not-durable"
    )
    return server.handler()


def _load(port: int, connections: int, warmup: float, seconds: float, out: Any) -> None:
    """Keep-alive HTTP/1.1 load: count responses completed in *seconds*."""
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\n"
        + f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n".encode()
        + f"Content-Length: {len(REQUEST)}\r\n\r\n".encode()
        + REQUEST
    )

    async def worker(
        counts: list[int], stop: list[bool], measuring: list[bool]
    ) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while not stop[0]:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head[:40])
            if measuring[0]:
                counts[0] += 1
        writer.close()

    async def main() -> int:
        counts, stop, measuring = [0], [False], [False]
        tasks = [
            asyncio.create_task(worker(counts, stop, measuring))
            for _ in range(connections)
        ]
        await asyncio.sleep(warmup)
        measuring[0] = True
        await asyncio.sleep(seconds)
        measuring[0] = False
        stop[0] = True
        await asyncio.gather(*tasks)
        return counts[0]

    out.put(asyncio.run(main()) / seconds)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def throughput(
    app: str, mode: str, folder: Path, seconds: float = 3.0, connections: int = 16
) -> float:
    """
    Requests per second through one uvicorn worker serving *app* in *mode*
    (``bare``, ``passthrough``, ``wrapped`` or ``not-durable``: wrapped
    with ``durable=False``).
    """
    port = _free_port()
    env = {
        **os.environ,
        "ZC_BENCH_APP": app,
        "ZC_BENCH_MODE": mode,
        "ZC_BENCH_DB": str(folder),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "benchmarks.bench_http:served_app",
            "--app-dir",
            str(ROOT),
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--lifespan",
            "off",
        ],
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        loader = ctx.Process(target=_load, args=(port, connections, 1.0, seconds, out))
        loader.start()
        rate: float = out.get(timeout=seconds + 60)
        loader.join(10)
        return rate
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


def main() -> None:
    """Print both measurements and their ratios."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "db"
        print("In-process overhead per request (full stack on LMDB vs bare app):")
        in_process(folder)
        print("Of which LMDB tenant and limit operations, each once per request:")
        store_costs(folder)
        print("The middleware alone (memory stores, a tenant without limits):")
        middleware_only()
        print("Throughput through uvicorn, one worker, 16 keep-alive connections:")
        print(
            f"{'':24}{'bare req/s':>11}{'pass-through':>13}{'wrapped':>9}"
            f"{'ratio':>7}{'ceiling':>9}{'added µs':>10}"
        )
        for app, label in (
            ("minimal", "minimal app (json)"),
            ("toy", "toy OpenAI app (chat)"),
            *((f"model{ms}", f"model call {ms} ms") for ms in MODEL_MILLISECONDS),
        ):
            bare = throughput(app, "bare", folder)
            floor = throughput(app, "passthrough", folder)
            wrapped = throughput(app, "wrapped", folder)
            print(
                f"{label:24}{bare:11.0f}{floor:13.0f}{wrapped:9.0f}"
                f"{wrapped / bare:7.2f}{floor / bare:9.2f}"
                f"{(1 / wrapped - 1 / bare) * 1e6:10.1f}"
            )
        print(
            "  target: ratio >= 0.85; ceiling: the pass-through middleware's"
            " ratio; added µs: server time per request, wrapped minus bare"
        )


if __name__ == "__main__":
    main()
