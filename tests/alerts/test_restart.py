"""
No alert is lost across a restart: a sender stopped mid-queue leaves the
rest in the LMDB outbox, and a new process delivers all of it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.alerts._receiver import Receiver
from zerfoo_cloud.alerts import (
    AlertEvent,
    WebhookSecret,
    WebhookSender,
    deterministic_event_id,
    post,
)
from zerfoo_cloud.stores.alerts import LMDBAlertOutbox

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_new_process_delivers_what_a_stopped_sender_left(
    tmp_path: Path, secret: WebhookSecret, receiver: Receiver
) -> None:
    """Stop after 5 of 20, reopen in another process: all 20 ids arrive, none waits."""
    import time

    folder = tmp_path / "alerts"
    now = time.time()
    events = [
        AlertEvent(deterministic_event_id("test", n), "test", now, "acme", {"n": n})
        for n in range(20)
    ]
    with LMDBAlertOutbox.open(folder) as outbox:
        for event in events:
            outbox.add(event, [receiver.url], now)
        calls = []

        def stopping_post(
            url: str, body: bytes, headers: dict[str, str], timeout: float
        ) -> str:
            calls.append(url)
            if len(calls) == 5:
                sender.stop(0)
            return post(url, body, headers, timeout)

        sender = WebhookSender(outbox, [secret], poster=stopping_post)
        assert sender.send_due() == 5
        assert outbox.counts() == (15, 0, 5)
    env = {**os.environ, "ZERFOO_CLOUD_WEBHOOK_SECRET": secret.reveal()}
    done = subprocess.run(
        [sys.executable, "-m", "tests.alerts._alerts_child", str(folder)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert orjson.loads(done.stdout) == {
        "went": 15,
        "pending": 0,
        "dead": 0,
        "delivered": 20,
    }
    assert sorted(receiver.ids()) == sorted(e.id for e in events)
    assert secret.reveal() not in done.stderr.decode()


def test_a_second_process_does_not_send_while_one_sends(tmp_path: Path) -> None:
    """The send lock is held by one opener of the folder at a time."""
    folder = tmp_path / "alerts"
    with LMDBAlertOutbox.open(folder) as outbox, outbox.sending() as mine:
        assert mine
        code = (
            "import sys; from zerfoo_cloud.stores.alerts import LMDBAlertOutbox\n"
            f"o = LMDBAlertOutbox.open({str(folder)!r})\n"
            "with o.sending() as mine: print(mine)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=60,
        )
        assert done.stdout.strip() == b"False"
