"""
PostgreSQL for the tests: the server on 127.0.0.1:5432 (trust auth), and a
throwaway database per test session, with a random name, dropped at the end.

Without the server the tests that need it skip with one line saying what to
start; with ``CI`` set they fail instead.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

#: The maintenance database the tests create their own databases from.
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
#: What to start when it is missing.
START_POSTGRES = "start PostgreSQL 15 on 127.0.0.1:5432"
#: A port nothing listens on: a dead server.
DEAD_URL = "postgresql://zc:s3cret-pw@127.0.0.1:9/zc"


def postgres_up() -> bool:
    """Whether something accepts connections on 127.0.0.1:5432."""
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def require_postgres() -> None:
    """Skip the test (fail it when ``CI`` is set) if PostgreSQL is down."""
    if postgres_up():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{START_POSTGRES} (CI is set: PostgreSQL tests may not skip)")
    pytest.skip(START_POSTGRES)


def database_url(name: str) -> str:
    """The URL of database *name* on the test server."""
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


@contextmanager
def throwaway_database() -> Iterator[str]:
    """
    Create an empty database with a random name; yield its URL; drop it.
    """
    import psycopg

    name = f"zc_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield database_url(name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def reset_database(url: str) -> None:
    """
    Empty every table of the upgraded database at *url*, drop its billing
    partitions and set the audit chain back to its start.
    """
    import psycopg

    with psycopg.connect(url) as conn:
        parts = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'billing'::regclass"
        ).fetchall()
        for (name,) in parts:
            conn.execute(f'DROP TABLE "{name}"')
        conn.execute(
            "TRUNCATE tenants, tenant_keys, billing_request_ids, audit, audit_batches, audit_head,"
            " prices;"
            "INSERT INTO audit_head VALUES (1, 0, repeat('0', 64), 0, repeat('0', 64))"
        )
