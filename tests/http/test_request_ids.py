"""
Request ids: one generator for billing records and the HTTP layer, unique in
a process and across a fork.
"""

from __future__ import annotations

import os
import sys

import pytest

from zerfoo_cloud.http import _policy
from zerfoo_cloud.metering import new_request_id


def test_one_generator_serves_billing_and_http() -> None:
    """The HTTP layer uses the metering module's generator, not one of its own."""
    assert _policy.new_request_id is new_request_id


def test_ids_are_unique_and_ordered_in_a_process() -> None:
    """Ids made one after another are distinct, 32 hex digits, and sort in order."""
    ids = [new_request_id() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert all(i[12:20] == ids[0][12:20] for i in ids)


@pytest.mark.skipif(
    sys.platform != "linux", reason="fork semantics are tested on Linux"
)
def test_forked_child_makes_other_ids() -> None:
    """A forked child gets a new random part, so it never repeats its parent's ids."""
    parent = new_request_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.write(write, new_request_id().encode())
        finally:
            os._exit(0)
    os.close(write)
    try:
        child = os.read(read, 64).decode()
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert len(child) == 32
    assert child[12:20] != parent[12:20]
