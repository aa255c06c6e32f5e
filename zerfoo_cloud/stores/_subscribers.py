"""
The callbacks subscribed to one `zerfoo_cloud.stores.protocols.KeyRevocations`:
added, removed, and called one by one with each message, a callback that
raises being logged and skipped so the others still hear it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["Subscribers", "call"]

_log = logging.getLogger("zerfoo_cloud.stores")

#: What a subscriber is called with: a tenant id, or ``None`` for "anything
#: may have changed".
Callback = Callable[[str | None], None]


def call(callback: Callback, tenant_id: str | None) -> None:
    """
    Call ``callback(tenant_id)``; log and ignore what it raises.
    """
    try:
        callback(tenant_id)
    except Exception:  # noqa: BLE001 - one subscriber's bug must not silence the others
        _log.exception("a key revocation subscriber failed; ignored")


class _Subscription:
    """One callback of a `Subscribers`; `close` removes it."""

    __slots__ = ("_callback", "_owner")

    def __init__(self, owner: Subscribers, callback: Callback) -> None:
        self._owner = owner
        self._callback = callback

    def close(self) -> None:
        """
        Stop calling the callback. Calling it twice is harmless.
        """
        self._owner.remove(self._callback)


class Subscribers:
    """
    A set of callbacks, each called with every message; safe for many threads.
    """

    __slots__ = ("_callbacks", "_lock")

    def __init__(self) -> None:
        self._callbacks: list[Callback] = []
        self._lock = threading.Lock()

    def add(self, callback: Callback) -> _Subscription:
        """
        Add *callback*; the returned subscription's ``close`` removes it.
        """
        with self._lock:
            self._callbacks = [*self._callbacks, callback]
        return _Subscription(self, callback)

    def remove(self, callback: Callback) -> None:
        """
        Remove *callback* (once); nothing if it is not there.
        """
        with self._lock:
            kept = list(self._callbacks)
            if callback in kept:
                kept.remove(callback)
            self._callbacks = kept

    def clear(self) -> None:
        """
        Remove every callback.
        """
        with self._lock:
            self._callbacks = []

    def __bool__(self) -> bool:
        """
        Whether any callback is subscribed.
        """
        return bool(self._callbacks)

    def deliver(self, tenant_id: str | None) -> None:
        """
        Call every callback with *tenant_id*; one that raises is logged and
        the others are still called.
        """
        for callback in self._callbacks:
            call(callback, tenant_id)

    def reset(self) -> None:
        """
        Give this set a new lock (in a forked child, where the parent's may
        be held forever).
        """
        self._lock = threading.Lock()
