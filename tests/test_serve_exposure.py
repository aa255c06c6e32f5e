"""
What a real ``zerfoo-cloud serve`` process exposes: request-head bounds, log
lines without keys, ``/metrics`` only where allowed, and ``/readyz``.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests._serving import ROOT, free_port, serve_command, uvicorn_command
from tests.test_http_limits import exchange, head_of, read_response
from tests.test_serve import chat, cli, running

pytestmark = pytest.mark.slow

ADMIN_KEY = "admin-secret-for-the-log-test"


def serve_args(db: Path, port: int, *extra: str) -> list[str]:
    """The command line of ``zerfoo-cloud serve`` of the toy app on *port*."""
    return serve_command(db, "toy_openai_app:app", "--port", str(port), *extra)


def rss_kib(pid: int) -> int:
    """The resident memory of process *pid* in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+)", status)
    assert match is not None
    return int(match.group(1))


def serve_pid(port: int) -> int:
    """The pid of the process listening on *port* (Linux)."""
    inode = None
    hex_port = f":{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(hex_port) and fields[3] == "0A":
            inode = fields[9]
            break
    assert inode is not None
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if fd.readlink().name == f"socket:[{inode}]":
                return int(fd.parts[2])
        except OSError:  # noqa: PERF203 - a process that just ended
            continue
    pytest.fail("no process listens on the port")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_serve_bounds_request_heads(tmp_path: Path) -> None:
    """Finding 6: a head at 64 KiB is served, one byte more is 431, memory stays flat."""
    db = tmp_path / "db"
    port = free_port()
    with running(
        serve_args(db, port, "--header-timeout", "1"), port, cwd=ROOT / "examples"
    ):
        assert exchange(port, head_of(64 * 1024, "/healthz")).startswith(
            b"HTTP/1.1 200"
        )
        assert exchange(port, head_of(64 * 1024 + 1, "/healthz")).startswith(
            b"HTTP/1.1 431"
        )
        pid = serve_pid(port)
        before = rss_kib(pid)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nx-long: ")
            sent = 0
            with pytest.raises(OSError):  # noqa: PT012 - the loop is what is refused
                while sent < 64 * 1024 * 1024:
                    s.sendall(b"a" * 65536)
                    sent += 65536
        assert rss_kib(pid) - before < 16 * 1024
        with socket.create_connection(("127.0.0.1", port), timeout=30) as slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\n")
            started = time.monotonic()
            assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
            answer = read_response(slow)
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert time.monotonic() - started < 15


def test_no_log_line_of_serve_carries_a_key(tmp_path: Path) -> None:
    """Finding 7: keys in queries and paths, tenant or admin, are never logged."""
    db = tmp_path / "db"
    key = json.loads(cli(db, "tenant", "create", "acme", "--json").stdout)["api_key"]
    port = free_port()
    log = tmp_path / f".server-{port}.log"
    # running() deletes its log on exit: keep a copy before it does.
    with running(
        serve_args(db, port),
        port,
        cwd=tmp_path,
        env={"ZERFOO_CLOUD_ADMIN_KEY": ADMIN_KEY, "PYTHONPATH": str(ROOT / "examples")},
    ) as url:
        auth = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{url}/v1/models?api_key={key}").status_code == 401
        httpx.get(f"{url}/v1/models/{key}", headers=auth)
        httpx.get(f"{url}/v1/models?x={key}&token={ADMIN_KEY}", headers=auth)
        httpx.get(f"{url}/admin/tenants?admin_key={ADMIN_KEY}")
        httpx.get(f"{url}/admin/{ADMIN_KEY}/tenants")
        assert chat(url, key).status_code == 200
        time.sleep(0.5)
        text = log.read_text()
    assert "GET /v1/models?api_key=[redacted]" in text
    assert "/admin/[redacted]/tenants" in text
    assert key not in text
    assert key[len("zc-") :] not in text
    assert ADMIN_KEY not in text


def scrape(port: int, token: str | None = None) -> httpx.Response:
    """GET /metrics on *port*."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=30)


def test_metrics_are_not_public_by_default(tmp_path: Path) -> None:
    """Finding 8: no /metrics on the serving port without a token."""
    db = tmp_path / "db"
    key = json.loads(cli(db, "tenant", "create", "acme", "--json").stdout)["api_key"]
    port = free_port()
    with running(serve_args(db, port), port, cwd=ROOT / "examples") as url:
        assert chat(url, key).status_code == 200
        refused = scrape(port)
        assert refused.status_code == 404
        assert "acme" not in refused.text
        assert refused.json()["error"]["type"] == "invalid_request_error"


def test_metrics_with_a_token_on_the_serving_port(tmp_path: Path) -> None:
    """Finding 8: with ZERFOO_CLOUD_METRICS_TOKEN, /metrics needs that bearer token."""
    db = tmp_path / "db"
    key = json.loads(cli(db, "tenant", "create", "acme", "--json").stdout)["api_key"]
    port = free_port()
    token = "metrics-token-of-the-test"
    with running(
        serve_args(db, port),
        port,
        cwd=ROOT / "examples",
        env={"ZERFOO_CLOUD_METRICS_TOKEN": token},
    ) as url:
        assert chat(url, key).status_code == 200
        assert scrape(port).status_code == 401
        assert scrape(port, "wrong").status_code == 401
        served = scrape(port, token)
        assert served.status_code == 200
        assert 'tenant="all"' in served.text
        assert "acme" not in served.text


def test_metrics_port_with_two_workers_and_tenant_labels(tmp_path: Path) -> None:
    """Finding 8: --metrics-port sums both workers; tenant labels only on request."""
    db = tmp_path / "db"
    key = json.loads(cli(db, "tenant", "create", "acme", "--json").stdout)["api_key"]
    port, metrics_port = free_port(), free_port()
    args = serve_args(
        db,
        port,
        "--workers",
        "2",
        "--metrics-port",
        str(metrics_port),
        "--metrics-tenant-labels",
    )
    with running(args, port, cwd=ROOT / "examples") as url:
        for _ in range(6):
            assert chat(url, key).status_code == 200
        assert scrape(port).status_code == 404
        text = scrape(metrics_port).text
    line = re.search(
        r'zerfoo_cloud_requests_total\{model="toy-1",result="success",tenant="acme"\} (\S+)',
        text,
    )
    assert line is not None, text[:2000]
    assert float(line.group(1)) == 6


def test_readyz_follows_the_upstream(tmp_path: Path) -> None:
    """Readiness: /readyz is 503 while the upstream is down, 200 once it is up."""
    db = tmp_path / "db"
    up_port, port = free_port(), free_port()
    server = serve_command(
        db, "--upstream", f"http://127.0.0.1:{up_port}/v1", "--port", str(port)
    )
    upstream = uvicorn_command("toy_openai_app:app", up_port, "--log-level", "warning")
    with running(server, port, cwd=tmp_path) as url:
        assert httpx.get(url + "/healthz").status_code == 200
        down = httpx.get(url + "/readyz")
        assert down.status_code == 503
        assert down.json() == {
            "status": "not ready",
            "checks": {"store": "ok", "counters": "ok", "upstream": "failing"},
        }
        with running(upstream, up_port, cwd=ROOT / "examples"):
            deadline = time.monotonic() + 20
            while (ready := httpx.get(url + "/readyz")).status_code != 200:
                assert time.monotonic() < deadline, ready.text
                time.sleep(0.2)
            assert ready.json() == {"status": "ready"}
