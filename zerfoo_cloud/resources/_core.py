"""
The locked core of a `ResourceManager` that its synchronous and async
methods share: making room, running evict callbacks, pinning, and the
single-flight state of each loader run.

Every ``*_locked`` method expects the caller to hold ``_lock``; the others
take it themselves. Nothing here awaits: a step that would have to wait
either waits on the condition (``may_wait``) or raises `WouldBlockError`
for an async caller to await the next change instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from zerfoo_cloud.errors import (
    InvalidConfigError,
    ModelNotLoadedError,
    ModelTooLargeError,
    ResourceBusyError,
)
from zerfoo_cloud.resources._books import NO_HANDLE, Books, Entry, Victims
from zerfoo_cloud.resources._checks import check_count, check_model_id, deadline
from zerfoo_cloud.resources._flight import EnsureCall, Flight, WouldBlockError

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.resources._records import EvictCallback, ModelInfo

__all__ = ["ManagerCore"]

_log = logging.getLogger("zerfoo_cloud.resources")


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ManagerCore:
    """
    The state of a `ResourceManager` and the steps its methods are built from.
    """

    def __init__(self, budget_bytes: int, *, clock: Clock = time.time) -> None:
        if (
            isinstance(budget_bytes, bool)
            or not isinstance(budget_bytes, int)
            or budget_bytes <= 0
        ):
            msg = f"the memory budget must be a positive number of bytes, not {budget_bytes!r}"
            raise InvalidConfigError(msg, field="budget_bytes")
        self._budget = budget_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._async_waiters: list[
            tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]
        ] = []
        self._books = Books(budget_bytes)
        self._flights: dict[str, Flight] = {}
        self._on_evict: EvictCallback | None = None
        self._callback_errors = 0
        self._local = threading.local()

    @property
    def _releases(self) -> dict[str, int]:
        """
        Evicted models whose callback has not returned (see `Books.releases`).
        """
        return self._books.releases

    def _check_load(self, model_id: str, vram_bytes: int) -> None:
        check_model_id(model_id)
        check_count(vram_bytes, "vram_bytes")
        if vram_bytes > self._budget:
            raise ModelTooLargeError(model_id, vram_bytes, self._budget)

    def _notify_locked(self) -> None:
        self._changed.notify_all()
        if self._async_waiters:
            waiters, self._async_waiters = self._async_waiters, []
            for loop, future in waiters:
                with contextlib.suppress(RuntimeError):  # the loop has closed
                    loop.call_soon_threadsafe(_resolve, future)

    # -- making room -------------------------------------------------------

    def _make_room_locked(
        self, model_id: str, vram_bytes: int, deadline: float | None, *, may_wait: bool
    ) -> Victims:
        """
        Evict idle models until *vram_bytes* for *model_id* fit, or wait, or fail.

        Returns the evicted ``(id, bytes)``, already off the books and in
        ``releases``; the caller books the model in the same lock hold and
        then runs `_run_callbacks` on them outside the lock. Evictions under
        way are always waited for (they end when their callback returns);
        models in use and loads in progress only until *deadline*.
        """
        while True:
            victims = self._books.take_room(model_id, vram_bytes)
            if victims is not None:
                return victims
            # Waiting for our own callbacks would never end, so a load made
            # from inside an evict callback does not wait for evictions.
            in_callback = getattr(self._local, "depth", 0) > 0
            remaining = None if deadline is None else deadline - time.monotonic()
            if (
                self._books.releases
                and not in_callback
                and (remaining is None or remaining > 0)
            ) or (remaining is not None and remaining > 0):
                if not may_wait:
                    raise WouldBlockError(remaining)
                self._changed.wait(remaining)
                continue
            raise self._busy_error(model_id, vram_bytes, waited=deadline is not None)

    def _busy_error(
        self, model_id: str, vram_bytes: int, *, waited: bool
    ) -> ResourceBusyError:
        busy = self._books.busy()
        if model_id in self._books.releases:
            msg = f"model {model_id!r} is still being evicted; load it again once its evict callback returns"
        else:
            msg = (
                f"cannot book model {model_id!r} ({vram_bytes} bytes): {busy} of the "
                f"{self._budget}-byte budget are held by models in use, loading or "
                "being evicted"
            )
        if waited:
            msg += " (timed out waiting for them)"
        return ResourceBusyError(
            model_id,
            msg,
            vram_bytes=vram_bytes,
            busy_bytes=busy,
            budget_bytes=self._budget,
        )

    def _book_locked(self, model_id: str, vram_bytes: int, handle: object) -> bool:
        books = self._books
        before = books.used
        new = books.book(model_id, vram_bytes, handle, self._clock())
        if books.used < before:
            self._notify_locked()
        return new

    def _evict_one(self, model_id: str) -> Victims:
        with self._lock:
            entry = self._books.models.get(model_id)
            if entry is None:
                raise ModelNotLoadedError(model_id)
            if entry.pins:
                msg = (
                    f"model {model_id!r} is in use by {entry.pins} request(s); it "
                    "can be evicted once they end"
                )
                raise ResourceBusyError(
                    model_id,
                    msg,
                    busy_bytes=entry.vram_bytes,
                    budget_bytes=self._budget,
                )
            self._books.release(model_id, entry.vram_bytes, hold=True)
            return [(model_id, entry.vram_bytes)]

    # -- evict callbacks ---------------------------------------------------

    def _run_callbacks(self, victims: Victims) -> None:
        """
        Call the evict callback for each victim in order, outside the lock,
        releasing each one's bytes when its callback returns or raises.
        """
        if not victims:
            return
        fn = self._on_evict
        local = self._local
        local.depth = getattr(local, "depth", 0) + 1
        done = 0
        try:
            for mid, size in victims:
                done += 1
                self._call_evict(fn, mid, size)
        finally:
            local.depth -= 1
            if done < len(victims):  # a BaseException: release the rest too
                with self._lock:
                    for mid, _ in victims[done:]:
                        self._finish_release_locked(mid)

    def _call_evict(self, fn: EvictCallback | None, model_id: str, size: int) -> None:
        try:
            if fn is not None:
                fn(model_id)
        except Exception:  # noqa: BLE001 - a failing callback must not corrupt the books
            _log.exception(
                "evict callback failed for model %r; its %d bytes are counted as free",
                model_id,
                size,
            )
            with self._lock:
                self._callback_errors += 1
        finally:
            with self._lock:
                self._finish_release_locked(model_id)

    def _finish_release_locked(self, model_id: str) -> None:
        self._books.finish_release(model_id)
        self._notify_locked()

    # -- pinning -----------------------------------------------------------

    def _pin_locked(self, model_id: str, entry: Entry) -> ModelInfo:
        return self._books.pin(model_id, entry, self._clock())

    def _pin(self, model_id: str) -> ModelInfo:
        with self._lock:
            entry = self._books.models.get(model_id)
            if entry is None:
                raise ModelNotLoadedError(model_id)
            return self._pin_locked(model_id, entry)

    def _unpin_locked(self, model_id: str) -> None:
        if self._books.unpin(model_id, self._clock()):
            self._notify_locked()

    def _unpin(self, model_id: str) -> None:
        with self._lock:
            self._unpin_locked(model_id)

    @contextlib.contextmanager
    def _unpinning(self, model_id: str) -> Iterator[None]:
        """
        Unpin *model_id* when the block ends, however it ends.
        """
        try:
            yield
        finally:
            self._unpin(model_id)

    @contextlib.contextmanager
    def _pinned(self, model_id: str) -> Iterator[ModelInfo]:
        """
        Pin *model_id* for the block; yield it as it was when pinned.
        """
        info = self._pin(model_id)
        with self._unpinning(model_id):
            yield info

    # -- single-flight loading ---------------------------------------------

    def _join_locked(
        self, model_id: str, vram_bytes: int, deadline: float | None, *, pin: bool
    ) -> tuple[Flight | None, bool, object]:
        """
        Return ``(None, False, handle)`` for a loaded model (pinned if *pin*),
        ``(flight, False, None)`` to wait on a loader that is running, or
        ``(flight, True, None)`` when the caller must run the loader.
        """
        entry = self._books.models.get(model_id)
        if entry is not None and entry.handle is not NO_HANDLE:
            if pin:
                self._pin_locked(model_id, entry)
            else:
                self._books.touch(model_id, entry, self._clock())
            return None, False, entry.handle
        flight = self._flights.get(model_id)
        if flight is not None:
            return flight, False, None
        flight = Flight(model_id, vram_bytes, deadline, pin=pin)
        self._flights[model_id] = flight
        return flight, True, None

    def _reserve_locked(self, flight: Flight, *, may_wait: bool) -> Victims:
        """
        Make room and hold it for *flight*'s loader; return the victims.

        A failure other than having to wait ends the flight with that error.
        """
        model_id, vram_bytes = flight.model_id, flight.vram_bytes
        try:
            victims = self._make_room_locked(
                model_id, vram_bytes, flight.deadline, may_wait=may_wait
            )
        except WouldBlockError:
            raise
        except BaseException as exc:
            self._settle_locked(flight, None, exc)
            raise
        entry = self._books.models.get(model_id)
        if entry is None:
            self._books.loading += vram_bytes
            flight.reserved = vram_bytes
        else:
            self._book_locked(model_id, vram_bytes, NO_HANDLE)
            self._pin_locked(model_id, entry)
            flight.warm = True
        return victims

    def _settle_locked(
        self, flight: Flight, handle: object, error: BaseException | None
    ) -> None:
        """
        End *flight* (once): book the model on success, release what it held,
        wake the waiters.
        """
        if flight.done:
            return
        model_id = flight.model_id
        self._books.loading -= flight.reserved
        flight.reserved = 0
        if flight.warm:
            self._unpin_locked(model_id)
        if error is None:
            self._book_locked(model_id, flight.vram_bytes, handle)
            if flight.pin:
                self._pin_locked(model_id, self._books.models[model_id])
        elif isinstance(error, Exception):
            flight.error = error
        del self._flights[model_id]
        flight.done = True
        self._notify_locked()

    def _settle(
        self, flight: Flight, handle: object, error: BaseException | None
    ) -> None:
        with self._lock:
            self._settle_locked(flight, handle, error)

    def _ensure_call(
        self, model_id: str, vram_bytes: int, timeout: float | None, *, pin: bool
    ) -> EnsureCall:
        """
        Check the arguments of an `ensure_loaded` call (or a twin) and start it.
        """
        self._check_load(model_id, vram_bytes)
        return EnsureCall(model_id, vram_bytes, deadline(timeout), pin=pin)

    def _ensure_step_locked(
        self, call: EnsureCall, *, may_wait: bool
    ) -> tuple[bool, object]:
        """
        Take *call* as far as it goes without running a loader.

        Returns ``(True, handle)`` for a loaded model (pinned if the call
        pins), or ``(False, victims)`` when the caller leads ``call.flight``:
        the room is held and it runs the callbacks, then the loader, then
        `_settle`. A caller waiting on another's loader raises that loader's
        exception. With *may_wait*, waits on the condition; without, raises
        `WouldBlockError` for the caller to await the next change and call
        again with the same *call*.
        """
        while True:
            if call.flight is None:
                flight, call.leader, handle = self._join_locked(
                    call.model_id, call.vram_bytes, call.deadline, pin=call.pin
                )
                if flight is None:
                    return True, handle
                call.flight = flight
            flight = call.flight
            if call.leader:
                return False, self._reserve_locked(flight, may_wait=may_wait)
            if not flight.done:
                if not may_wait:
                    raise WouldBlockError(None)
                if flight.thread == threading.get_ident():
                    raise self._self_wait_error(call.model_id)
                self._changed.wait()
                continue
            if flight.error is not None:
                raise flight.error
            call.flight = None  # the model is loaded now, or its loader was interrupted

    def _self_wait_error(self, model_id: str) -> ResourceBusyError:
        msg = (
            f"model {model_id!r} is being loaded by this same thread (a loader "
            "that loads its own model, or a blocking call from the event loop "
            "running its async loader); waiting for it would never end"
        )
        return ResourceBusyError(model_id, msg, budget_bytes=self._budget)
