"""
The concurrency slots one store holds: their lease ids, and the thread that
renews them while the process lives.

A slot on Redis is a lease: a member of the slot key's sorted set, scored
by its expiry. The store that took it remembers its id here; `settle` gives
back one of them, and a `LeaseRenewer` pushes every expiry forward while
the process lives, so a long stream keeps its slot and a dead host's slots
come back when their leases run out.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Callable

from zerfoo_cloud._fork import on_fork
from zerfoo_cloud.errors import StoreError

__all__ = ["HeldLeases", "LeaseRenewer"]

_log = logging.getLogger("zerfoo_cloud.stores.redis")


class _Forks:
    """
    How many times this process's ancestors forked on the way to it: a
    store used in a forked child sees a new count, and drops what its
    parent held (the parent's leases, its renewal thread, which the fork
    did not copy).
    """

    count = 0

    @classmethod
    def forked(cls) -> None:
        cls.count += 1


on_fork(_Forks.forked)


class HeldLeases:
    """
    The lease ids this store holds, per slot key; safe for many threads.
    A process forked from the holder holds none of them.

    Ids are ``<random token>:<counter>``: unique across hosts and processes.

    .. versionadded:: 0.1.0
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, list[str]] = {}
        self._token = os.urandom(8).hex()
        self._counter = itertools.count(1)
        self._forks = _Forks.count

    def _after_fork(self) -> None:
        # A forked child starts afresh: its parent's leases are not its own.
        if self._forks != _Forks.count:
            self._forks = _Forks.count
            self._lock = threading.Lock()
            self._held = {}
            self._token = os.urandom(8).hex()

    def new_id(self) -> str:
        """
        Return a lease id never used before.
        """
        self._after_fork()
        return f"{self._token}:{next(self._counter)}"

    def add(self, slot_key: str, lease_id: str) -> None:
        """
        Remember that *lease_id* of *slot_key* is held.
        """
        self._after_fork()
        with self._lock:
            self._held.setdefault(slot_key, []).append(lease_id)

    def pop(self, slot_key: str) -> str | None:
        """
        Forget and return one held lease of *slot_key* (the newest), or ``None``.
        """
        self._after_fork()
        with self._lock:
            ids = self._held.get(slot_key)
            if not ids:
                return None
            lease_id = ids.pop()
            if not ids:
                del self._held[slot_key]
            return lease_id

    def snapshot(self) -> dict[str, list[str]]:
        """
        Return a copy of every held lease id, per slot key.
        """
        self._after_fork()
        with self._lock:
            return {key: list(ids) for key, ids in self._held.items()}

    def forget(self, slot_key: str, lease_ids: list[str]) -> None:
        """
        Forget *lease_ids* of *slot_key* (leases that expired).
        """
        self._after_fork()
        gone = set(lease_ids)
        with self._lock:
            ids = [i for i in self._held.get(slot_key, ()) if i not in gone]
            if ids:
                self._held[slot_key] = ids
            else:
                self._held.pop(slot_key, None)

    def forget_prefix(self, prefix: str) -> None:
        """
        Forget every lease of a slot key starting with *prefix*.
        """
        self._after_fork()
        with self._lock:
            for key in [k for k in self._held if k.startswith(prefix)]:
                del self._held[key]


class LeaseRenewer:
    """
    A daemon thread calling *renew* every *interval* seconds, started by
    `start` and stopped by `stop`.

    A failed renewal (Redis unreachable) is logged and retried at the next
    interval; leases not renewed in time expire and are given back.

    .. versionadded:: 0.1.0
    """

    def __init__(self, renew: Callable[[], object], interval: float) -> None:
        self._renew = renew
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._forks = _Forks.count

    def start(self) -> None:
        """
        Start the thread unless it runs (or was stopped); in a forked
        child, which has no copy of the thread, start a new one.
        """
        if self._forks != _Forks.count:
            self._forks = _Forks.count
            self._lock = threading.Lock()
            self._thread = None
        if self._thread is not None or self._stop.is_set():
            return
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="zerfoo-cloud-lease-renewer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._renew_once()

    def _renew_once(self) -> None:
        try:
            self._renew()
        except StoreError as exc:
            _log.warning("renewing concurrency leases failed: %s", exc)

    def stop(self) -> None:
        """
        Stop the thread and wait for it. Calling it twice is harmless.
        """
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)
