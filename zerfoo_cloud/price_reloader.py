"""
`PriceReloader`: each host's copy of the stored price table, kept up to
date by a thread.

The meter and the policy of a server read their ``prices`` attribute once
per request and never keep it; the reloader assigns a new table to that
attribute (one atomic assignment) as soon as it sees a new version in the
`zerfoo_cloud.stores.protocols.PriceStore`. It reads the version alone, a
cheap read, once per *interval* (a second by default), in its own thread:
the event loop never waits on the store. A table changed on one host is in
force on every host within about one interval.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from zerfoo_cloud.errors import CloudError, InvalidConfigError

if TYPE_CHECKING:
    from zerfoo_cloud.stores.protocols import PriceStore

__all__ = ["DEFAULT_INTERVAL", "PriceReloader"]

_log = logging.getLogger("zerfoo_cloud.prices")

#: Seconds between two reads of the stored version.
DEFAULT_INTERVAL = 1.0


class PriceReloader:
    """
    Assigns each new stored price table to the ``prices`` attribute of
    every object of *targets* (a `zerfoo_cloud.TokenMeter`, a policy).

    Args:
        store: the store to watch.
        targets: objects with a ``prices`` attribute.
        interval: seconds between two reads of the version (more than 0).
        version: the version the targets' tables already are (0: none).

    `check` looks once, in the caller's thread; `start` runs it every
    *interval* in a daemon thread until `close`. A store that fails is
    logged (once until it answers again) and the tables in force stay.

    Raises:
        InvalidConfigError: *interval* is not more than 0.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        store: PriceStore,
        targets: Iterable[Any],
        *,
        interval: float = DEFAULT_INTERVAL,
        version: int = 0,
    ) -> None:
        if not interval > 0:
            msg = f"interval: seconds, more than 0, not {interval!r}"
            raise InvalidConfigError(msg, field="interval")
        self.store = store
        self.targets = list(targets)
        self.interval = interval
        #: The version of the table the targets hold.
        self.version = version
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def check(self) -> bool:
        """
        Read the stored version; when it is new, read the table and assign
        it to every target. Return whether the targets got a new table.

        Raises:
            StoreError: the store failed (nothing was assigned).
        """
        if self.store.version() == self.version:
            return False
        stored = self.store.read()
        if stored.table is None or stored.version == self.version:
            return False
        for target in self.targets:
            target.prices = stored.table
        self.version = stored.version
        _log.info("price table version %d in force", stored.version)
        return True

    def start(self) -> None:
        """
        Run `check` every *interval* seconds in a daemon thread (once).
        """
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name="zerfoo-cloud-prices", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._check_logged()

    def _check_logged(self) -> None:
        try:
            self.check()
        except CloudError as exc:
            if not self._failing:
                _log.warning("price table not reloaded: %s", exc)
            self._failing = True
        else:
            self._failing = False

    def close(self) -> None:
        """
        Stop the thread and wait for it. Calling it twice is harmless.
        """
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
