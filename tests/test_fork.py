"""
One fork story: the package registers one ``os.register_at_fork`` hook
(`zerfoo_cloud._fork`), and every part that a forked child must reset
registers with it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from zerfoo_cloud import _fork

PACKAGE = Path(__file__).resolve().parent.parent / "zerfoo_cloud"


def test_the_package_registers_one_fork_hook() -> None:
    """Only zerfoo_cloud/_fork.py calls os.register_at_fork."""
    calling = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "register_at_fork(" in path.read_text(encoding="utf-8")
    )
    assert calling == ["_fork.py"]


class _Counter:
    def __init__(self) -> None:
        self.forked = 0

    def _forked(self) -> None:
        self.forked += 1


@pytest.mark.skipif(sys.platform != "linux", reason="fork semantics on Linux")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_hooks_and_objects_are_reset_in_the_child_only() -> None:
    """A forked child runs each hook and each registered object's _forked once; the parent none."""
    calls: list[int] = []
    _fork.on_fork(lambda: calls.append(os.getpid()))
    counter = _Counter()
    _fork.reset_in_child(counter)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked child
        ok = calls == [os.getpid()] and counter.forked == 1
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"1"
    assert calls == []
    assert counter.forked == 0
