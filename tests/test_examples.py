"""
The examples run and show what they promise.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import openai
import pytest

from tests._background import serving
from tests.http._support import KEY, serve_wsgi
from zerfoo_cloud import AuditLogger, TenantConfig, TenantManager, TokenMeter
from zerfoo_cloud.stores.lmdb import LMDBStores

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BIN = Path(sys.executable).parent
MESSAGES: list[Any] = [{"role": "user", "content": "tell me about the weather"}]
#: The toy tokenizer's count for MESSAGES: one token per word.
PROMPT_TOKENS = 5


def run_example(name: str) -> str:
    """
    Run examples/*name* with this interpreter and return its output.
    """
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=EXAMPLES,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_demo_shows_every_outcome() -> None:
    """make demo's script serves real requests and ends with a report and a verified chain."""
    out = run_example("demo.py")
    for expected in (
        "429 RateLimitError, Retry-After:",
        "403 PermissionDeniedError",
        "401 AuthenticationError",
        "GET /admin/tenants -> 200: ['acme', 'globex', 'initech']",
        "GET /metrics without the token -> 401",
        "/metrics: 5 successful requests counted",
        "request 5: 429 insufficient_quota: You exceeded your current quota",
        "total: 0.0076 USD of a 0.01 USD budget",
        # The console's operator sign-in is the last entry.
        "signed in as an operator (200): 3 tenants listed",
        "audit log intact: 15 entries",
    ):
        assert expected in out
    report = out.split("== zerfoo-cloud usage report")[1]
    assert "acme     toy-1" in report
    assert "globex   toy-2" in report
    assert "initech  toy-1" in report


def test_tenants_and_limits_example() -> None:
    """The store-only example shows the limits and the cross-process quota."""
    out = run_example("tenants_and_limits.py")
    assert "request 6: refused, retry in 12s" in out
    shared = re.search(
        r"(\d+) requests left; this process spent (\d+), another process (\d+): "
        r"together (\d+)",
        out,
    )
    assert shared is not None, out
    left, here, there, together = map(int, shared.groups())
    assert left >= 99
    assert here == 60
    assert together == here + there == left


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "zerfoo-cloud"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _stream(client: openai.OpenAI, **extra: Any) -> list[Any]:
    return list(
        client.chat.completions.create(
            model="toy-1", messages=MESSAGES, max_tokens=4, stream=True, **extra
        )
    )


def _exercise(base: str, key: str) -> None:
    """A chat, a stream with usage and a plain stream, as the openai client sees them."""
    with openai.OpenAI(
        base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=30
    ) as client:
        reply = client.chat.completions.create(
            model="toy-1", messages=MESSAGES, max_tokens=3
        )
        assert reply.usage is not None
        assert reply.usage.completion_tokens == 3
        chunks = _stream(client, stream_options={"include_usage": True})
        words = [c.choices[0].delta.content for c in chunks if c.choices]
        assert len([w for w in words if w]) == 4
        usage = chunks[-1].usage
        assert usage is not None
        assert chunks[-1].choices == []
        assert (usage.prompt_tokens, usage.completion_tokens) == (PROMPT_TOKENS, 4)
        plain = _stream(client)
        assert len([c for c in plain if c.choices and c.choices[0].delta.content]) == 4
        assert all(c.usage is None for c in plain)


def _billed(db: Path) -> list[tuple[int, int]]:
    with LMDBStores.open(db) as stores:
        now = datetime.now(timezone.utc)
        records = TokenMeter(stores.billing).query(
            "acme", now - timedelta(hours=1), now + timedelta(hours=1)
        )
        audited = AuditLogger(stores.audit).query(
            "acme", now - timedelta(hours=1), now + timedelta(hours=1)
        )
        assert len(audited) == len(records)
        return [(r.input_tokens, r.output_tokens) for r in records]


@pytest.mark.slow
def test_fastapi_example_serves_the_cli_store_and_streams(tmp_path: Path) -> None:
    """
    Run as its docstring says, the FastAPI example serves the tenant the CLI made.

    It reads ZERFOO_CLOUD_DB like serve and the CLI, streams to the openai
    client (usage in the last chunk when asked), and bills and audits each
    request.
    """
    env = {**os.environ, "ZERFOO_CLOUD_DB": str(tmp_path / "db")}
    env.pop("ZERFOO_DB", None)
    created = json.loads(
        _cli(
            env,
            "tenant",
            "create",
            "acme",
            "--rate-limit",
            "60",
            "--token-budget",
            "10000",
            "--json",
        )
    )
    command = [
        str(BIN / "uvicorn"), "--app-dir", str(EXAMPLES), "fastapi_app:app",
        "--host", "127.0.0.1", "--port", "0",
    ]  # fmt: skip
    with serving(command, cwd=tmp_path, env=env) as base:
        _exercise(base, created["api_key"])
    assert _billed(tmp_path / "db") == [
        (PROMPT_TOKENS, 3),
        (PROMPT_TOKENS, 4),
        (PROMPT_TOKENS, 4),
    ]


def test_fastapi_example_without_a_store_says_so(tmp_path: Path) -> None:
    """Without ZERFOO_CLOUD_DB the FastAPI example stops and names it; it makes no store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZERFOO")}
    env["TMPDIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", "import fastapi_app"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=EXAMPLES,
        env=env,
    )
    assert done.returncode != 0
    assert "ZERFOO_CLOUD_DB" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_flask_example_streams_to_the_openai_client(tmp_path: Path) -> None:
    """The Flask example behind waitress streams, with usage in the last chunk when asked."""
    from flask_app import create_server

    with LMDBStores.open(tmp_path / "db") as stores:
        tenants = TenantManager(stores.tenants, limits=stores.limits)
        tenants.create(TenantConfig("acme", KEY, rate_limit=60, token_budget=10_000))
        meter = TokenMeter(stores.billing)
        audit = AuditLogger(stores.audit)
        server = create_server(tenants, meter, audit=audit)
        with serve_wsgi(server.handler()) as base:
            _exercise(base, KEY)
        server.close()
        meter.close()
        audit.close()
    assert _billed(tmp_path / "db") == [
        (PROMPT_TOKENS, 3),
        (PROMPT_TOKENS, 4),
        (PROMPT_TOKENS, 4),
    ]
