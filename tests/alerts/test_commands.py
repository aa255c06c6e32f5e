"""
Alerts from the outside: ``serve --webhook-url`` (built in-process) delivers
key alerts from ``zerfoo-cloud key`` and shows them on ``/metrics``; the
``alerts`` commands list, retry and test; bad options are one-line errors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.alerts._receiver import Receiver, receiving
from tests.test_cli import run
from zerfoo_cloud.alerts import (
    AlertEvent,
    Attempt,
    WebhookSecret,
    alerts_folder,
    random_event_id,
    verify,
)
from zerfoo_cloud.cli import cli
from zerfoo_cloud.serve import ServeConfig, build_app
from zerfoo_cloud.stores.alerts import LMDBAlertOutbox


def _wait(done: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.02)


def test_serve_delivers_key_alerts_from_the_cli_and_counts_them(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A key created by the command reaches the webhook, signed, and /metrics counts it."""
    db = tmp_path / "db"
    assert run(db, "tenant", "create", "acme")[0] == 0
    secret = WebhookSecret.generate()
    env = {
        "ZERFOO_CLOUD_WEBHOOK_SECRET": secret.reveal(),
        "ZERFOO_CLOUD_METRICS_TOKEN": "metrics-token-for-the-test",
        "XDG_STATE_HOME": os.environ["XDG_STATE_HOME"],
    }
    config = ServeConfig(
        db=str(db.resolve()),
        upstream="http://127.0.0.1:9",
        webhook_urls=("key.*=" + receiver.url, "budget.*=http://127.0.0.1:9/never"),
    )
    assert "/hooks/abc" not in repr(config)
    with caplog.at_level(logging.DEBUG):
        app = build_app(config, env)
        try:
            code, out = run(db, "key", "create", "acme", "--name", "ci", "--json")
            assert code == 0, out
            made = json.loads(out)
            _wait(lambda: receiver.received)
            (got,) = receiver.received
            assert verify(got.body, got.headers, secret) == got.headers["webhook-id"]
            body = json.loads(got.body)
            assert body["type"] == "key.created"
            assert body["data"]["key_id"] == made["id"]
            assert made["api_key"] not in got.body.decode()

            async def scrape() -> str:
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://t"
                ) as c:
                    answer = await c.get(
                        "/metrics",
                        headers={"Authorization": "Bearer metrics-token-for-the-test"},
                    )
                    return answer.text

            _wait(lambda: "alerts_delivered_total 1.0" in asyncio.run(scrape()))
            metrics = asyncio.run(scrape())
            assert "zerfoo_cloud_alerts_delivered_total 1.0" in metrics
            assert "zerfoo_cloud_alerts_pending 0.0" in metrics
        finally:
            asyncio.run(app.close())
    code, out = run(db, "audit", "query", "--tenant", "acme", "--format", "json")
    assert "alert:key.created:" in out
    assert secret.reveal()[6:] not in caplog.text


def _dead_letter(db: Path, url: str) -> str:
    event = AlertEvent(random_event_id(), "test", time.time(), "acme", {})
    with LMDBAlertOutbox.open(alerts_folder(str(db))) as outbox:
        outbox.add(event, [url], time.time())
        (delivery,) = outbox.pending()
        outbox.attempted(delivery, Attempt(time.time(), "503"), "dead", time.time())
        outbox.add(
            AlertEvent(random_event_id(), "test", time.time(), "", {}), [url], 1.0
        )
    return event.id


def test_list_and_retry_dead_letters(tmp_path: Path) -> None:
    """list shows pending and dead deliveries (URL path hidden); retry makes a dead one pending."""
    db = tmp_path / "db"
    event_id = _dead_letter(db, "http://127.0.0.1:9/secret-path-token")
    code, out = run(db, "alerts", "list", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["counts"] == {"pending": 1, "dead": 1, "delivered": 0}
    assert "secret-path-token" not in out
    code, out = run(db, "alerts", "list", "--dead")
    assert code == 0
    assert event_id in out
    assert "503" in out
    assert "1 pending, 1 dead" in out
    assert run(db, "alerts", "retry")[0] == 2
    code, out = run(db, "alerts", "retry", "evt_nope")
    assert code == 1
    assert "no dead letter" in out
    code, out = run(db, "alerts", "retry", event_id)
    assert code == 0
    assert "1 dead letter(s) pending again" in out
    assert json.loads(run(db, "alerts", "list", "--json")[1])["counts"]["dead"] == 0


def test_list_without_an_outbox_is_one_line(tmp_path: Path) -> None:
    """With no alert outbox for the store, list says so in one line."""
    code, out = run(tmp_path / "db", "alerts", "list")
    assert code == 1
    assert out.startswith("Error: no alert outbox at")
    assert "Traceback" not in out


def test_send_test_posts_a_signed_event(tmp_path: Path) -> None:
    """send-test delivers one signed test event, or exits 1 naming the failure."""
    secret = WebhookSecret.generate()
    runner = CliRunner()
    env = {"ZERFOO_CLOUD_WEBHOOK_SECRET": secret.reveal()}
    with receiving(fail_first=1) as receiver:
        failed = runner.invoke(cli, ["alerts", "send-test", receiver.url], env=env)
        assert failed.exit_code == 1
        assert "failed: 500" in failed.output
        sent = runner.invoke(cli, ["alerts", "send-test", receiver.url], env=env)
        assert sent.exit_code == 0, sent.output
        assert "was delivered: 200" in sent.output
        got = receiver.received[-1]
        assert verify(got.body, got.headers, secret)
        assert json.loads(got.body)["type"] == "test"
    assert secret.reveal() not in sent.output + failed.output


def test_send_test_without_a_secret_is_one_line(tmp_path: Path) -> None:
    """Without a secret the command says how to make one."""
    result = CliRunner().invoke(
        cli,
        ["alerts", "send-test", "http://127.0.0.1:9/x"],
        env={"ZERFOO_CLOUD_WEBHOOK_SECRET": ""},
    )
    assert result.exit_code == 1
    assert "alerts new-secret" in result.output


def test_a_secret_file_is_read(tmp_path: Path, receiver: Receiver) -> None:
    """--webhook-secret-file is read instead of the environment."""
    secret = WebhookSecret.generate()
    path = tmp_path / "secret"
    path.write_text(secret.reveal() + "\n")
    result = CliRunner().invoke(
        cli,
        ["alerts", "send-test", receiver.url, "--webhook-secret-file", str(path)],
        env={"ZERFOO_CLOUD_WEBHOOK_SECRET": ""},
    )
    assert result.exit_code == 0, result.output
    got = receiver.received[-1]
    assert verify(got.body, got.headers, secret)


def test_new_secret_prints_a_usable_secret() -> None:
    """new-secret prints a whsec_ secret that signs."""
    result = CliRunner().invoke(cli, ["alerts", "new-secret"])
    assert result.exit_code == 0
    assert WebhookSecret(result.output.strip()).reveal() == result.output.strip()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--webhook-url", "ftp://x/y"],
            {"ZERFOO_CLOUD_WEBHOOK_SECRET": ""},
            "webhook URL",
        ),
        (
            ["--webhook-url", "http://127.0.0.1:9/x"],
            {"ZERFOO_CLOUD_WEBHOOK_SECRET": ""},
            "signing secret",
        ),
        (
            ["--webhook-url", "http://127.0.0.1:9/x", "--webhook-events", "keys.*"],
            {"ZERFOO_CLOUD_WEBHOOK_SECRET": ""},
            "matches no event type",
        ),
        (
            ["--webhook-url", "http://127.0.0.1:9/x"],
            {"ZERFOO_CLOUD_WEBHOOK_SECRET": "whsec_c2hvcnQ="},
            "malformed",
        ),
        (["--key-expiry-window", "0"], {}, "longer than 0"),
    ],
)
def test_serve_refuses_bad_alert_options(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    """Bad webhook options stop serve with one line, never echoing a secret."""
    db = tmp_path / "db"
    assert run(db, "tenant", "create", "acme")[0] == 0
    result = CliRunner().invoke(
        cli,
        ["--db", str(db), "serve", "--upstream", "http://127.0.0.1:9", *args],
        env=env,
    )
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert "c2hvcnQ" not in result.output
