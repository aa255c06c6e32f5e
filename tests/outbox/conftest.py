"""
Fixtures of the outbox suite: every test runs once per primary store.

The seam for another primary (PostgreSQL) is `PRIMARIES` here and
``tests/outbox/_primaries.open_primary``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.outbox._primaries import Primary, open_primary
from zerfoo_cloud.stores.outbox import Outbox

#: One param per primary store; add ``pytest.param("postgres", ...)`` here.
PRIMARIES = [pytest.param("lmdb", id="lmdb")]


@pytest.fixture(params=PRIMARIES)
def primary(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Primary]:
    """
    A primary (billing and keyed audit store), reachable at first.
    """
    opened = open_primary(request.param, tmp_path / "primary")
    yield opened
    opened.switch.up()
    opened.close()


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    """
    An empty outbox whose drainer retries quickly.
    """
    box = Outbox.open(tmp_path / "outbox", first_retry=0.01, max_retry=0.05)
    yield box
    box.close()
