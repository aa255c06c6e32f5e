"""
The outbox's drainer: one background thread that runs drain rounds, waits
idle while there is nothing to drain, and backs off (with jitter) while the
primary store fails.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

from zerfoo_cloud._fork import reset_in_child

__all__ = ["FIRST_RETRY", "IDLE_POLL", "MAX_RETRY", "Backoff", "Drainer"]

#: Seconds before the first retry after a failed round.
FIRST_RETRY = 0.1
#: The longest wait between retries.
MAX_RETRY = 5.0
#: Seconds between looks at an outbox that had nothing to drain (another
#: process on the host may have left batches in it).
IDLE_POLL = 1.0


class Backoff:
    """
    Exponential backoff with jitter: each `next` doubles the step from
    *first* up to *cap* and returns a random wait in the upper half of it,
    so hosts that lost the same primary do not retry in step.
    """

    def __init__(self, first: float = FIRST_RETRY, cap: float = MAX_RETRY) -> None:
        self.first = first
        self.cap = cap
        self._step = first

    def next(self) -> float:
        """
        The seconds to wait before the next try.
        """
        step = self._step
        self._step = min(self.cap, step * 2)
        return step * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret

    def reset(self) -> None:
        """
        Start again from *first* (a round succeeded).
        """
        self._step = self.first


class Drainer:
    """
    Runs ``drain_round()`` from one thread, started by `wake` and stopped
    by `stop`.

    *drain_round* returns how many items it delivered, or raises (the
    round failed: the thread waits a `Backoff` step, which a `wake` does
    not cut short). *has_work* says whether anything waits. With nothing
    delivered the thread waits `IDLE_POLL` seconds or until woken.
    """

    def __init__(
        self,
        name: str,
        drain_round: Callable[[], int],
        has_work: Callable[[], bool],
        backoff: Backoff,
    ) -> None:
        self._name = name
        self._round = drain_round
        self._has_work = has_work
        self._backoff = backoff
        self._reset()
        reset_in_child(self)

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._woken = False
        self._backing_off = False
        self._stopped = False

    def _forked(self) -> None:  # pragma: no cover - runs in forked children
        stopped = self._stopped
        self._reset()
        self._stopped = stopped

    def wake(self) -> None:
        """
        Start the thread if it is not running; end an idle wait.
        """
        with self._cond:
            if self._stopped:
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=self._name, daemon=True
                )
                self._thread.start()
            if not self._backing_off:
                self._woken = True
                self._cond.notify()

    def stop(self, timeout: float | None = None) -> None:
        """
        Stop the thread once its round (if one runs) ends; wait up to *timeout*.
        """
        with self._cond:
            self._stopped = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        """
        Whether the thread is started and not stopped.
        """
        return self._thread is not None and not self._stopped

    def _run(self) -> None:
        delay: float | None = 0.0
        cond = self._cond
        while True:
            with cond:
                if delay and not self._woken:
                    cond.wait(delay)
                self._woken = False
                self._backing_off = False
                if self._stopped:
                    self._thread = None
                    return
            try:
                if not self._has_work():
                    delay = IDLE_POLL
                    continue
                delivered = self._round()
            except Exception:  # noqa: BLE001 - the round counted and logged it
                with cond:
                    self._backing_off = True
                delay = self._backoff.next()
                continue
            self._backoff.reset()
            delay = 0.0 if delivered else IDLE_POLL
