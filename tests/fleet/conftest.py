"""
The fleet the tests of this folder share: started once per module (about
10 s), stopped at its end.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet._fleet import Fleet

pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")
pytest.importorskip("redis", reason="the redis extra (redis-py) is not installed")


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    """Three hosts on their own PostgreSQL and Redis, and an upstream."""
    # Not under pytest's tmp_path: its parents are private to this user,
    # and PostgreSQL may run as another.
    folder = Path(tempfile.mkdtemp(prefix="zc-fleet-"))
    folder.chmod(0o755)
    started = Fleet(folder)
    try:
        started.start()
        yield started
    finally:
        started.close()
        shutil.rmtree(folder, ignore_errors=True)
