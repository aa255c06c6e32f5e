"""
What a forked child resets: one ``os.register_at_fork`` hook for the package.

A child of ``fork()`` inherits the parent's threads' state but not its
threads, and its open LMDB handles, pipes and writer processes are the
parent's. Every part that keeps such state registers here, and the one hook
resets each in the child: writer queues (`zerfoo_cloud._writer`), writer
processes and their pipes, LMDB environments, cached process ids, request-id
prefixes. One registry means one place to read what a fork resets, and one
order: hooks run in the order they were registered, then each object's
``_forked()``.

The LMDB environments and the LMDB store registry register here too rather
than keep hooks in the backend: dropping an inherited handle is the same
concern as dropping an inherited pipe or queue (state that belongs to the
parent), each reset touches only its own object, and none depends on
another having run.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Protocol

__all__ = ["Forkable", "on_fork", "reset_in_child"]


class Forkable(Protocol):
    """Something that resets its process-bound state in a forked child."""

    def _forked(self) -> None: ...


_HOOKS: list[Callable[[], None]] = []
_OBJECTS: weakref.WeakSet[Forkable] = weakref.WeakSet()


def on_fork(hook: Callable[[], None]) -> None:
    """
    Call *hook* (kept for the life of the process) in every forked child.
    """
    _HOOKS.append(hook)


def reset_in_child(obj: Forkable) -> None:
    """
    Call ``obj._forked()`` in every forked child while *obj* lives (it is
    held weakly).
    """
    _OBJECTS.add(obj)


def _after_fork_in_child() -> None:  # pragma: no cover - runs in forked children
    for hook in _HOOKS:
        hook()
    for obj in list(_OBJECTS):
        obj._forked()  # noqa: SLF001


os.register_at_fork(after_in_child=_after_fork_in_child)
