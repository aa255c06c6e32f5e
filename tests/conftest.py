"""
Fixtures shared by the whole suite.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from zerfoo_cloud.stores.lmdb import LMDBStores

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: The shared test data folder beside the checkout (SAML vectors, ...).
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


class FakeClock:
    """
    A clock the test moves by hand.
    """

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """
    A clock that stands still until the test advances it.
    """
    return FakeClock()


@pytest.fixture
def lmdb_stores(tmp_path: Path) -> Iterator[LMDBStores]:
    """
    A fresh LMDB store folder, closed after the test.
    """
    stores = LMDBStores.open(tmp_path / "db")
    yield stores
    stores.close()
