"""
Fixtures shared by the whole suite.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

from tests._postgres_servers import (
    require_postgres,
    reset_database,
    throwaway_database,
)
from tests._redis_servers import (
    REDIS_URL,
    START_REDIS,
    missing,
    redis_cluster,
    single_redis_up,
)
from zerfoo_cloud.stores.lmdb import LMDBStores

if TYPE_CHECKING:
    from zerfoo_cloud.stores.postgres import PostgresStores

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: The shared test data folder beside the checkout (SAML vectors, ...).
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(autouse=True, scope="session")
def _state_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """
    The user's state folder (where PostgreSQL records keep their outbox by
    default) is a temporary one for the whole session, commands it starts
    included: no test writes under ``~/.local/state``.
    """
    before = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield
    if before is None:
        del os.environ["XDG_STATE_HOME"]
    else:
        os.environ["XDG_STATE_HOME"] = before


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


@pytest.fixture
def redis_url() -> str:
    """
    The URL of the Redis on 127.0.0.1:6379 (skipped, or failed under CI,
    when it is not running).
    """
    if not single_redis_up():
        missing(f"Redis is not running on 127.0.0.1:6379: start it with {START_REDIS}")
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """
    The URL of a node of a 3-node Redis Cluster started for this session.
    """
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as url:
        yield url


@pytest.fixture
def redis_prefix() -> str:
    """
    A key prefix no other test uses, so tests sharing a Redis stay apart.
    """
    return f"zc-test:{uuid.uuid4().hex}:"


@pytest.fixture(scope="session")
def postgres_session_url() -> Iterator[str]:
    """
    The URL of a database of this test session, upgraded to the current
    schema, on the PostgreSQL at 127.0.0.1:5432 (skipped, or failed under
    CI, when it is not running); dropped at the end of the session.
    """
    require_postgres()
    from zerfoo_cloud.stores.postgres import upgrade_schema

    with throwaway_database() as url:
        upgrade_schema(url)
        yield url


@pytest.fixture
def postgres_url(postgres_session_url: str) -> str:
    """
    The session's PostgreSQL database, emptied for this test.
    """
    reset_database(postgres_session_url)
    return postgres_session_url


@pytest.fixture
def postgres_stores(postgres_url: str) -> Iterator[PostgresStores]:
    """
    PostgreSQL stores over an empty database, closed after the test.
    """
    from zerfoo_cloud.stores.postgres import PostgresStores

    stores = PostgresStores.open(postgres_url, max_size=4)
    yield stores
    stores.close()
