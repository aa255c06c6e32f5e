"""
The reverse proxy against what it sits in front of, side by side in one run.

Each server is its own process with one uvicorn worker:

- ``direct``: the bare upstream (`_proxy_apps.upstream`), a chat completion
  in JSON with usage, or `CHUNKS` server-sent events for ``"stream": true``;
- ``pass-through aiohttp``: the least a proxy on the client the proxy uses
  does (`_proxy_apps.aiohttp_passthrough`), the ceiling for any proxy on it;
- ``pass-through httpx``: the same on httpx, the client the proxy used before;
- ``UpstreamProxy alone``: `zerfoo_cloud.http.proxy.UpstreamProxy`, no policy;
- ``serve --upstream``: ``zerfoo-cloud serve`` with the full policy (a tenant
  with a key, limits and an allow list, billing and audit on LMDB in a
  temporary folder, durable answers), access log off;
- ``LiteLLM``: the LiteLLM proxy with a master key, when it is installed.

Load comes from ``wrk`` when it is on the PATH (``apt-get install wrk``),
else from a Python keep-alive load generator in another process (slower:
it takes CPU from the servers, so its numbers are lower). For each server,
at 1, 32 and 256 connections (JSON) and 1 and 32 (SSE), it prints requests
per second, p50 and p99 latency, the server's CPU time per request (its own
process, and the writer processes it started), the ratio of requests per
second to the pass-through's, and the p50 added over direct.

Targets (issue 14): ``serve --upstream`` at 32 connections at least 30 % of
the pass-through's requests per second, at most 300 µs of CPU per request
and 3 ms of p50 added; throughput that does not fall from 1 to 32 to 256
connections. ``ZC_BENCH_QUICK=1`` runs shorter windows and no httpx row.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from benchmarks._proxy_load import python_load
from tests._serving import BIN, ROOT, free_port, spawn, stop, uvicorn_command

QUICK = os.environ.get("ZC_BENCH_QUICK") == "1"
#: Seconds of warm-up and of measurement for each point.
WARMUP, SECONDS = (1, 2) if QUICK else (1, 3)
JSON_BODY = json.dumps(
    {"model": "bench", "messages": [{"role": "user", "content": "hi"}]}
)
SSE_BODY = json.dumps(
    {"model": "bench", "messages": [{"role": "user", "content": "hi"}], "stream": True}
)
#: (kind, connections) for every server ...
POINTS = [("json", 1), ("json", 32), ("sse", 1), ("sse", 32)]
#: ... and for those whose throughput from 1 to 32 to 256 connections is shown.
SCALING = [*POINTS[:2], ("json", 256), *POINTS[2:]]
SERVE = "serve --upstream (full policy)"


@attrs.frozen
class Point:
    """One measurement: a server under one load."""

    rate: float
    p50_ms: float
    p99_ms: float
    cpu_us: float
    writers_us: float
    errors: int


def _wait_for(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"server exited: {log.read_text()[-2000:]}"
            raise RuntimeError(msg)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    msg = f"server did not start: {log.read_text()[-2000:]}"
    raise RuntimeError(msg)


@contextmanager
def _process(
    args: list[str], port: int, folder: Path, env: dict[str, str] | None = None
) -> Iterator[int]:
    log = folder / f"server-{port}.log"
    with log.open("wb") as out:
        proc = spawn(args, cwd=ROOT, out=out, env=env)
    try:
        _wait_for(port, proc, log)
        yield proc.pid
    finally:
        stop(proc)


def _uvicorn(target: str, port: int, *, factory: bool = False) -> list[str]:
    args = uvicorn_command(
        target, port, "--http", "httptools", "--log-level", "warning", "--no-access-log"
    )
    return [*args, "--factory"] if factory else args


def _seconds(pid: int) -> float:
    """User and system CPU seconds of process *pid* (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *_children(int(child))]
    return found


def _cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of process *pid*, and of its child processes (NaN off Linux)."""
    try:
        children = 0.0
        for child in _children(pid):
            try:
                children += _seconds(child)
            except OSError:  # noqa: PERF203 - a writer may just have exited
                continue
        return _seconds(pid), children
    except OSError:
        return float("nan"), float("nan")


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    """A wrk duration (``812.00us``, ``1.35ms``, ``2.00s``, ``1.00m``) in ms."""
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if found is None:
        return float("nan")
    return float(found.group(1)) * _UNIT[found.group(2)]


def _wrk(url: str, body: str, key: str, connections: int, seconds: float) -> Any:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    )
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                str(script),
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 30,
        ).stdout
    finally:
        script.unlink()
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    errors = int(bad.group(1)) if bad else 0
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    return (
        done,
        _ms(re.search(r"50%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        _ms(re.search(r"99%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        errors,
    )


def _measure(process: int, port: int, key: str, kind: str, connections: int) -> Point:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    body = SSE_BODY if kind == "sse" else JSON_BODY
    load = (
        _wrk if shutil.which("wrk") else python_load
    )  # the same (done, p50, p99, errors)
    load(url, body, key, connections, WARMUP)
    before, before_children = _cpu(process)
    started = time.perf_counter()
    done, p50, p99, errors = load(url, body, key, connections, SECONDS)
    took = time.perf_counter() - started
    after, after_children = _cpu(process)
    # wrk's window is SECONDS; the CPU was read around the whole run.
    per = max(done, 1)
    return Point(
        rate=done / SECONDS,
        p50_ms=p50,
        p99_ms=p99,
        cpu_us=(after - before) / per * 1e6 * SECONDS / took,
        writers_us=(after_children - before_children) / per * 1e6 * SECONDS / took,
        errors=errors,
    )


def _litellm_command() -> str | None:
    """The ``litellm`` command: beside this interpreter, else on the PATH."""
    beside = BIN / "litellm"
    return str(beside) if beside.exists() else shutil.which("litellm")


def _litellm(
    folder: Path, upstream: str, port: int
) -> tuple[list[str], dict[str, str]]:
    config = folder / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: bench\n"
        "    litellm_params:\n"
        "      model: openai/bench\n"
        f"      api_base: {upstream}/v1\n"
        "      api_key: sk-upstream\n"
    )
    command = _litellm_command()
    assert command is not None
    args = [command, "--config", str(config), "--port", str(port)]
    return args, {"LITELLM_MASTER_KEY": "sk-bench-master"}


@attrs.frozen
class Server:
    """One server to measure: its command, environment, key and loads."""

    name: str
    args: list[str]
    env: dict[str, str] = attrs.field(factory=dict)
    key: str = "none"
    points: list[tuple[str, int]] = POINTS


def _tenant_key(db: Path) -> str:
    """Create the tenant ``bench`` with limits too high to bind; its key."""
    created = subprocess.run(
        [
            *(str(BIN / "zerfoo-cloud"), "--db", str(db), "tenant", "create", "bench"),
            *("--rate-limit", str(10**9), "--token-budget", str(10**12)),
            *("--max-concurrent", str(10**5), "--model", "bench", "--json"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    key: str = json.loads(created.stdout)["api_key"]
    return key


def _servers(folder: Path, upstream: str) -> Iterator[Server]:
    """Each server after direct, in the order they run."""
    env = {"ZC_BENCH_UPSTREAM": upstream}
    apps = "benchmarks._proxy_apps:"
    yield Server(
        "pass-through aiohttp",
        _uvicorn(apps + "aiohttp_passthrough", 0, factory=True),
        env,
        points=SCALING,
    )
    if not QUICK:
        yield Server(
            "pass-through httpx",
            _uvicorn(apps + "httpx_passthrough", 0, factory=True),
            env,
        )
    yield Server(
        "UpstreamProxy alone", _uvicorn(apps + "bare_proxy", 0, factory=True), env
    )
    db = folder / "db"
    key = _tenant_key(db)
    serve = [str(BIN / "zerfoo-cloud"), "--db", str(db), "serve", "--upstream"]
    serve += [upstream, "--log-level", "warning", "--port", "0"]
    yield Server(SERVE, serve, key=key, points=SCALING)
    if not QUICK:
        yield Server(
            "serve --upstream --no-durable",
            [*serve, "--no-durable"],
            key=key,
            points=POINTS[:2],
        )
    if _litellm_command() is None:
        print(
            "   LiteLLM: not installed, skipped (pip install 'litellm[proxy]',"
            " here or in a virtual environment on the PATH)"
        )
        return
    args, litellm_env = _litellm(folder, upstream, 0)
    yield Server("LiteLLM", args, litellm_env, litellm_env["LITELLM_MASTER_KEY"])


def _with_port(args: list[str], port: int) -> list[str]:
    out = list(args)
    out[out.index("--port") + 1] = str(port)
    return out


def _run_server(server: Server, folder: Path) -> dict[tuple[str, int], Point]:
    port = free_port()
    results = {}
    with _process(_with_port(server.args, port), port, folder, server.env) as process:
        for kind, connections in server.points:
            point = _measure(process, port, server.key, kind, connections)
            results[kind, connections] = point
            print(_line(server.name, kind, connections, point), flush=True)
    return results


def _line(name: str, kind: str, connections: int, point: Point) -> str:
    errors = f"  ({point.errors} errors)" if point.errors else ""
    return (
        f"   {name:<31}{kind:>5}{connections:>5}{point.rate:>10,.0f}"
        f"{point.p50_ms:>9.2f}{point.p99_ms:>9.2f}{point.cpu_us:>10.0f}"
        f"{point.writers_us:>9.0f}{errors}"
    )


def _summary(table: dict[str, dict[tuple[str, int], Point]]) -> None:
    direct = table["direct"]
    through = table["pass-through aiohttp"]
    print(
        f"   {'ratios':<31}{'kind':>5}{'conn':>5}{'req/s':>10}{'÷ pass':>9}"
        f"{'÷ direct':>9}{'p50 added ms':>14}"
    )
    for name, points in table.items():
        for (kind, connections), point in points.items():
            print(
                f"   {name:<31}{kind:>5}{connections:>5}{point.rate:>10,.0f}"
                f"{point.rate / through[kind, connections].rate:>9.2f}"
                f"{point.rate / direct[kind, connections].rate:>9.2f}"
                f"{point.p50_ms - direct[kind, connections].p50_ms:>14.2f}"
            )
    served = table[SERVE]
    rates = [served["json", c].rate for c in (1, 32, 256)]
    sse = served["sse", 32].cpu_us - through["sse", 32].cpu_us
    print(
        "   targets, serve --upstream at 32 connections:"
        f" {served['json', 32].rate / through['json', 32].rate:.0%} of the pass-through"
        f" (≥ 30 %), {served['json', 32].cpu_us:.0f} µs CPU per request (≤ 300),"
        f" p50 +{served['json', 32].p50_ms - direct['json', 32].p50_ms:.2f} ms (≤ 3);"
        f" 1→32→256 connections: {' → '.join(f'{r:,.0f}' for r in rates)} req/s"
        f" ({'does not fall' if rates[0] <= rates[1] * 1.05 and rates[1] <= rates[2] * 1.05 else 'falls'});"
        f" SSE: {sse / 100:.1f} µs of CPU per chunk over the pass-through (≤ 5)"
    )
    litellm = table.get("LiteLLM")
    if litellm is not None:
        print(
            f"   serve --upstream ÷ LiteLLM at 32 connections:"
            f" {served['json', 32].rate / litellm['json', 32].rate:.1f}x (at least 20x)"
        )


def main() -> None:
    """Run every server under every load and print the table and the ratios."""
    loader = (
        "wrk"
        if shutil.which("wrk")
        else "a Python load generator (install wrk for truer numbers)"
    )
    print(
        f"   load from {loader}; {SECONDS} s per point; one uvicorn worker per server"
    )
    print(
        f"   {'server':<31}{'kind':>5}{'conn':>5}{'req/s':>10}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'CPU µs':>10}{'writers':>9}"
    )
    table: dict[str, dict[tuple[str, int], Point]] = {}
    with tempfile.TemporaryDirectory(prefix="zc-bench-proxy-") as tmp:
        folder = Path(tmp)
        up_port = free_port()
        upstream = f"http://127.0.0.1:{up_port}"
        with _process(
            _uvicorn("benchmarks._proxy_apps:upstream", up_port), up_port, folder
        ) as up:
            table["direct"] = {}
            for kind, connections in SCALING:
                point = _measure(up, up_port, "none", kind, connections)
                table["direct"][kind, connections] = point
                print(_line("direct", kind, connections, point), flush=True)
            for server in _servers(folder, upstream):
                table[server.name] = _run_server(server, folder)
    _summary(table)


if __name__ == "__main__":
    main()
