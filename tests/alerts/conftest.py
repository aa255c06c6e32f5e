"""
Fixtures of the alert tests (the fake clock is the suite's): a secret, a receiver, and the
alert outboxes (memory and LMDB, one conformance suite).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.alerts._receiver import Receiver, receiving
from zerfoo_cloud.alerts import WebhookSecret
from zerfoo_cloud.stores.alerts import AlertOutbox, LMDBAlertOutbox, MemoryAlertOutbox


@pytest.fixture
def secret() -> WebhookSecret:
    """A new signing secret."""
    return WebhookSecret.generate()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver that accepts every delivery."""
    with receiving() as running:
        yield running


@pytest.fixture
def memory_outbox() -> MemoryAlertOutbox:
    """An alert outbox in memory."""
    return MemoryAlertOutbox()


@pytest.fixture
def lmdb_outbox(tmp_path: Path) -> Iterator[LMDBAlertOutbox]:
    """An alert outbox in an LMDB folder of its own."""
    outbox = LMDBAlertOutbox.open(tmp_path / "alerts")
    yield outbox
    outbox.close()


@pytest.fixture(
    params=[
        pytest.param("memory_outbox", marks=pytest.mark.memory, id="memory"),
        pytest.param("lmdb_outbox", marks=pytest.mark.lmdb, id="lmdb"),
    ]
)
def outbox(request: pytest.FixtureRequest) -> AlertOutbox:
    """Each alert outbox backend in turn."""
    found: AlertOutbox = request.getfixturevalue(request.param)
    return found
