"""
Request ids of the HTTP layer: unique in a process and across a fork.
"""

from __future__ import annotations

import os
import sys

import pytest

from zerfoo_cloud.http._policy import new_request_id


def test_ids_are_unique_and_ordered_in_a_process() -> None:
    """Ids made one after another are distinct, share a prefix and sort in order."""
    ids = [new_request_id() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(i) == 32 and i[:16] == ids[0][:16] for i in ids)


@pytest.mark.skipif(
    sys.platform != "linux", reason="fork semantics are tested on Linux"
)
def test_forked_child_makes_other_ids() -> None:
    """A forked child gets a new random prefix, so it never repeats its parent's ids."""
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
    assert child[:16] != parent[:16]
