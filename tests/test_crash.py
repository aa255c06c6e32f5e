"""
`zerfoo-cloud serve` killed with SIGKILL: with default settings, every answered
request is billed and audited on disk, and the audit chain verifies.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from tests._serving import run_cli as _cli
from zerfoo_cloud import TokenMeter
from zerfoo_cloud.stores.lmdb import LMDBStores

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: Requests sent before the kill, and how many at a time.
REQUESTS = 300
CONCURRENCY = 16
_LISTENING = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def _wait_for_port(proc: subprocess.Popen[bytes], log: Path) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = _LISTENING.search(log.read_bytes())
        if found:
            return int(found.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    pytest.fail(f"the server did not start: {log.read_text(errors='replace')}")


def _wait_until_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            if proc.poll() is not None:
                break
        time.sleep(0.05)
    pytest.fail("the server never answered /healthz")


def _chat(client: httpx.Client, url: str, key: str, n: int) -> tuple[int, int]:
    response = client.post(
        url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "model": "toy-1",
            "messages": [{"role": "user", "content": f"request number {n}"}],
            "max_tokens": 4,
        },
        timeout=60,
    )
    if response.status_code != 200:
        return response.status_code, 0
    usage = response.json()["usage"]
    return 200, usage["prompt_tokens"] + usage["completion_tokens"]


def test_sigkill_of_every_process_loses_no_answered_request(tmp_path: Path) -> None:
    """
    Requests through two workers, then SIGKILL of the master, the workers
    and the writer processes: every 200 the client saw has its billing
    record (once), every answered request its audit entry, and the chain
    verifies.
    """
    db = tmp_path / "db"
    created = _cli(
        db,
        "tenant",
        "create",
        "crash",
        "--rate-limit",
        "1000000",
        "--token-budget",
        "1000000000",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)["api_key"]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(BIN / "zerfoo-cloud"),
                "--db",
                str(db),
                "serve",
                "toy_openai_app:app",
                "--workers",
                "2",
                "--port",
                "0",
            ],
            cwd=ROOT / "examples",
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{_wait_for_port(proc, log)}"
        _wait_until_ready(url, proc)
        with (
            httpx.Client() as client,
            ThreadPoolExecutor(CONCURRENCY) as pool,
        ):
            answers = list(
                pool.map(lambda n: _chat(client, url, key, n), range(REQUESTS))
            )
    finally:
        # The whole process group: uvicorn's master, its workers and their
        # billing and audit writer processes, all at once.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    ok = [tokens for status, tokens in answers if status == 200]
    assert len(ok) == REQUESTS, sorted({s for s, _ in answers})

    with LMDBStores.open(db) as stores:
        now = datetime.now(timezone.utc)
        records = TokenMeter(stores.billing).query(
            "crash", now - timedelta(hours=1), now + timedelta(hours=1)
        )
    assert len(records) == len(ok)
    assert len({r.request_id for r in records}) == len(records)
    assert sum(r.input_tokens + r.output_tokens for r in records) == sum(ok)

    verified = _cli(db, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    intact = re.search(r"intact: (\d+) entries", verified.stdout)
    assert intact is not None, verified.stdout
    assert int(intact.group(1)) >= REQUESTS
