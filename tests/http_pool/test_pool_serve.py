"""
``zerfoo-cloud serve`` with a pool of upstreams, all processes: two toy
model servers behind one service, the pool options on the command line,
``/readyz`` following the replicas, and the per-upstream metrics.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests._serving import ROOT, free_port, serve_command, uvicorn_command
from tests.test_serve import chat, cli, running

pytestmark = pytest.mark.slow

TOKEN = "metrics-token-0123456789abcdef"


def _toy(port: int) -> list[str]:
    return uvicorn_command("toy_openai_app:app", port, "--log-level", "critical")


def _ready(url: str, status: int) -> bool:
    deadline = time.monotonic() + 20
    while httpx.get(url + "/readyz").status_code != status:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_serve_routes_a_pool_and_reports_each_replica(tmp_path: Path) -> None:
    db = tmp_path / "db"
    key = json.loads(cli(db, "tenant", "create", "acme", "--json").stdout)["api_key"]
    one, two, port = free_port(), free_port(), free_port()
    server = serve_command(
        db,
        "--upstream",
        f"http://127.0.0.1:{one}/v1",
        "--upstream",
        f"toy-2=http://127.0.0.1:{two}",
        "--upstream",
        f"toy-3=http://127.0.0.1:{two}",
        "--upstream-eject-after",
        "1",
        "--upstream-eject-cooldown",
        "0.2",
        "--upstream-probe-interval",
        "0.1",
        "--upstream-discovery-interval",
        "0.2",
        "--upstream-probe-timeout",
        "1",
        "--port",
        str(port),
        "--log-level",
        "critical",
    )
    examples = ROOT / "examples"
    env = {"ZERFOO_CLOUD_METRICS_TOKEN": TOKEN}
    with (
        running(_toy(one), one, cwd=examples),
        running(server, port, cwd=tmp_path, env=env) as url,
    ):
        auth = {"Authorization": f"Bearer {key}"}
        models = httpx.get(url + "/v1/models", headers=auth).json()
        assert [m["id"] for m in models["data"]] == ["toy-1", "toy-2", "toy-3"]
        # toy-3's only replica is down: not ready, but toy-1 is served.
        assert _ready(url, 503)
        assert chat(url, key).status_code == 200
        missing = chat(url, key, model="gpt-4o")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "model_not_found"
        with running(_toy(two), two, cwd=examples):
            assert _ready(url, 200)
            answers = [chat(url, key).status_code for _ in range(4)]
            assert answers == [200] * 4
        assert _ready(url, 503)
        scrape = httpx.get(
            url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
        ).text
    line = (
        f'zerfoo_cloud_upstream_requests_total{{upstream="http://127.0.0.1:{one}/v1"}}'
    )
    assert line in scrape
    assert "zerfoo_cloud_upstream_ejections_total" in scrape
    assert "zerfoo_cloud_upstream_request_duration_seconds_bucket" in scrape


def test_serve_refuses_an_odd_model_map(tmp_path: Path) -> None:
    done = cli(tmp_path / "db", "serve", "--upstream", "bad model=http://h")
    assert done.returncode != 0
    assert "printable ASCII" in done.stderr
    assert "Traceback" not in done.stderr
