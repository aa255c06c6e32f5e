"""
A GPU-memory budget for many models: least-recently-used eviction that never
takes a model away from a request using it.

`ResourceManager` books the memory of each loaded model against a budget.
Booking a model that does not fit evicts the least recently used idle models
until it does; the evict callback (where the application frees the memory)
runs outside the manager's lock, in eviction order, before the load
returns, and no other load can take the evicted bytes before it has
returned, so the booked total never exceeds what is really free. Every
operation is O(1), apart from stepping over models in use
when choosing what to evict.

A request pins its model for its duration (`ResourceManager.use`, or
`ResourceManager.loaded`, which also loads a cold model). Pinned models,
models being loaded and models being evicted are never evicted: a load that
could only fit by taking their memory raises `ResourceBusyError`, or waits
for them when given a timeout.

`ResourceManager.ensure_loaded` runs a model's loader once however many
requests ask for the cold model at the same time; the others wait and share
its result or its exception.

`ResourceManager.from_gpu` takes the budget from a GPU's memory through NVML,
`gpu_memory` reports every GPU's memory, and `estimate_vram_bytes` sizes a
safetensors model from its headers. See ``docs/resources.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, TypeVar, cast

import attrs

from zerfoo_cloud._nvml import GPUMemory, gpu_memory, read_device
from zerfoo_cloud._safetensors import (
    DEFAULT_KV_CACHE_FRACTION,
    MAX_HEADER_BYTES,
    estimate_vram_bytes,
)
from zerfoo_cloud.errors import (
    InvalidConfigError,
    ModelNotLoadedError,
    ModelTooLargeError,
    ResourceBusyError,
)

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock

__all__ = [
    "DEFAULT_KV_CACHE_FRACTION",
    "MAX_HEADER_BYTES",
    "EvictCallback",
    "GPUMemory",
    "ModelInfo",
    "ResourceManager",
    "ResourceUsage",
    "estimate_vram_bytes",
    "gpu_memory",
]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
_R = TypeVar("_R")

#: Called with the id of each evicted model, outside the manager's lock.
EvictCallback = Callable[[str], object]

#: The handle of a model booked with `ResourceManager.load` (no loader ran).
_NO_HANDLE: object = object()


@attrs.frozen
class ModelInfo:
    """
    A loaded model, as `ResourceManager.loaded_models` reports it.

    Attributes:
        model_id: the model's id.
        vram_bytes: the memory booked for it.
        loaded_at: when it was booked (Unix seconds, from the manager's clock).
        last_used: when it was last booked, touched or used.
        in_use: how many requests are using it now (see
            `ResourceManager.use`); a model in use is never evicted.

    .. versionadded:: 0.1.0
    """

    model_id: str
    vram_bytes: int
    loaded_at: float
    last_used: float
    in_use: int = 0


@attrs.frozen
class ResourceUsage:
    """
    Where the budget goes, as `ResourceManager.usage` reports it.

    Attributes:
        budget: the whole budget in bytes.
        used: bytes booked by loaded models (the sum over
            `ResourceManager.loaded_models`).
        in_use: the part of *used* held by models in use.
        loading: bytes held for loaders still running.
        releasing: bytes of models removed by `ResourceManager.evict` whose
            evict callback has not returned yet. (A model evicted to make
            room hands its bytes straight to the model that displaced it.)

    .. versionadded:: 0.1.0
    """

    budget: int
    used: int
    in_use: int
    loading: int
    releasing: int

    @property
    def free(self) -> int:
        """
        Bytes a load can take without evicting anything.
        """
        return self.budget - self.used - self.loading - self.releasing


class _Entry:
    """
    The mutable bookkeeping of one loaded model.
    """

    __slots__ = ("handle", "last_used", "loaded_at", "pins", "vram_bytes")

    def __init__(self, vram_bytes: int, now: float, handle: object) -> None:
        self.vram_bytes = vram_bytes
        self.loaded_at = now
        self.last_used = now
        self.pins = 0
        self.handle = handle


class _Flight:
    """
    One run of a model's loader, which concurrent callers wait on.
    """

    __slots__ = (
        "deadline",
        "done",
        "error",
        "model_id",
        "pin",
        "reserved",
        "thread",
        "vram_bytes",
        "warm",
    )

    def __init__(
        self, model_id: str, vram_bytes: int, deadline: float | None, *, pin: bool
    ) -> None:
        #: What the caller running the loader asked for; callers joining
        #: the flight share its booking.
        self.model_id = model_id
        self.vram_bytes = vram_bytes
        self.deadline = deadline
        self.pin = pin
        #: The thread that started it, which must never wait for it.
        self.thread = threading.get_ident()
        self.done = False
        #: The loader's exception, shared with every caller waiting.
        self.error: Exception | None = None
        #: Bytes held in ``_loading`` for a cold model.
        self.reserved = 0
        #: True when the model was already booked (by `load`) and is pinned
        #: while its loader runs.
        self.warm = False


class _WouldBlockError(Exception):
    """
    Raised inside the lock when an async caller would have to wait.
    """

    def __init__(self, remaining: float | None) -> None:
        super().__init__()
        self.remaining = remaining


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _check_model_id(model_id: object) -> str:
    if not isinstance(model_id, str) or not model_id:
        msg = f"a model id must be a non-empty string, not {model_id!r}"
        raise InvalidConfigError(msg, field="model_id")
    return model_id


def _check_count(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        msg = f"{field} must be an integer >= 0, not {value!r}"
        raise InvalidConfigError(msg, field=field)
    return value


def _deadline(timeout: float | None) -> float | None:
    """
    Turn a timeout into a `time.monotonic` deadline; None or 0 mean no wait.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not (
        isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout >= 0
    ):
        msg = (
            f"timeout must be None or a finite number of seconds >= 0, not {timeout!r}"
        )
        raise InvalidConfigError(msg, field="timeout")
    return time.monotonic() + timeout if timeout > 0 else None


class ResourceManager:
    """
    Books the GPU memory of loaded models against a budget, evicting the least
    recently used idle models to make room.

    Safe to share between threads; every method returns at once unless it
    says it waits, and the ``_async`` methods never block the event loop.
    Waiting uses `time.monotonic`; *clock* only stamps `ModelInfo` times.

    Args:
        budget_bytes: the memory the models may book, in bytes.
        clock: returns the current Unix time.

    Raises:
        InvalidConfigError: *budget_bytes* is not a positive integer.

    .. versionadded:: 0.1.0
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
        #: Loaded models, least recently used first.
        self._models: OrderedDict[str, _Entry] = OrderedDict()
        self._used = 0
        self._pinned = 0
        self._loading = 0
        self._releasing = 0
        #: Evicted models whose callback has not returned: id -> the bytes
        #: still counted in ``_releasing`` for it (0 when the load that
        #: evicted it took them over).
        self._releases: dict[str, int] = {}
        self._flights: dict[str, _Flight] = {}
        self._on_evict: EvictCallback | None = None
        self._callback_errors = 0
        self._local = threading.local()

    @classmethod
    def from_gpu(
        cls,
        device_index: int = 0,
        fraction: float = 0.9,
        reserve_bytes: int = 0,
        *,
        clock: Clock = time.time,
    ) -> ResourceManager:
        """
        Make a manager whose budget is a share of a GPU's total memory.

        The budget is ``floor(total * fraction) - reserve_bytes``, with
        *total* read through NVML. Keep *fraction* below 1 or set
        *reserve_bytes* to leave room for what the models do not book: the
        CUDA context, the framework's allocator, other processes.

        Args:
            device_index: the NVML index of the GPU (as ``nvidia-smi`` numbers them).
            fraction: the share of the memory to budget, in (0, 1].
            reserve_bytes: bytes to hold back on top, >= 0.
            clock: returns the current Unix time.

        Raises:
            InvalidConfigError: an argument is out of range, or leaves no budget.
            GPUUnavailableError: nvidia-ml-py is missing, there is no NVIDIA
                driver, or no GPU has that index.

        .. versionadded:: 0.1.0
        """
        _check_count(device_index, "device_index")
        _check_count(reserve_bytes, "reserve_bytes")
        if isinstance(fraction, bool) or not (
            isinstance(fraction, (int, float))
            and math.isfinite(fraction)
            and 0 < fraction <= 1
        ):
            msg = f"fraction must be a number in (0, 1], not {fraction!r}"
            raise InvalidConfigError(msg, field="fraction")
        device = read_device(device_index)
        budget = math.floor(device.total * fraction) - reserve_bytes
        if budget <= 0:
            msg = (
                f"GPU {device_index} ({device.name}, {device.total} bytes) leaves no "
                f"budget at fraction {fraction} with {reserve_bytes} bytes reserved"
            )
            raise InvalidConfigError(msg, field="reserve_bytes")
        return cls(budget, clock=clock)

    def __repr__(self) -> str:
        used, budget, loaded = self.stats()
        return f"<ResourceManager used={used} budget={budget} loaded={loaded}>"

    def __contains__(self, model_id: object) -> bool:
        """
        Whether *model_id* is loaded.
        """
        with self._lock:
            return model_id in self._models

    @property
    def budget_bytes(self) -> int:
        """
        The whole budget in bytes.
        """
        return self._budget

    @property
    def callback_errors(self) -> int:
        """
        How many times the evict callback has raised (each one was logged).
        """
        return self._callback_errors

    def set_evict_callback(self, fn: EvictCallback | None) -> None:
        """
        Call *fn* with the id of every model evicted from now on (None: none).

        The callback is where the application frees the model's memory. It
        runs outside the manager's lock, so it may call the manager, in the
        thread whose load or `evict` evicted the model (a worker thread for
        the ``_async`` methods), once per model in least-recently-used order,
        before that call returns. Until it returns, the model's bytes belong
        either to the model whose load displaced it (which its caller loads
        only after this) or, after `evict`, to no one, so no other load can
        take memory that is not free yet, and a load of the same model waits
        for it. An
        exception from it is logged on the ``zerfoo_cloud.resources`` logger
        and counted in `callback_errors`, and the bytes are released anyway.

        .. versionadded:: 0.1.0
        """
        self._on_evict = fn

    # -- reading -----------------------------------------------------------

    def stats(self) -> tuple[int, int, int]:
        """
        Return ``(used, budget, loaded)``: bytes booked by loaded models, the
        budget, and how many models are loaded.

        .. versionadded:: 0.1.0
        """
        with self._lock:
            return self._used, self._budget, len(self._models)

    def usage(self) -> ResourceUsage:
        """
        Return where the budget goes now, including loads and evictions in progress.

        .. versionadded:: 0.1.0
        """
        with self._lock:
            return ResourceUsage(
                budget=self._budget,
                used=self._used,
                in_use=self._pinned,
                loading=self._loading,
                releasing=self._releasing,
            )

    def loaded_models(self) -> list[ModelInfo]:
        """
        Return the loaded models, most recently used first.

        .. versionadded:: 0.1.0
        """
        with self._lock:
            return [
                ModelInfo(mid, e.vram_bytes, e.loaded_at, e.last_used, e.pins)
                for mid, e in reversed(self._models.items())
            ]

    # -- booking -----------------------------------------------------------

    def touch(self, model_id: str) -> None:
        """
        Mark *model_id* as used now, making it the last to be evicted.

        Raises:
            ModelNotLoadedError: the model is not loaded.

        .. versionadded:: 0.1.0
        """
        with self._lock:
            entry = self._models.get(model_id)
            if entry is None:
                raise ModelNotLoadedError(model_id)
            entry.last_used = self._clock()
            self._models.move_to_end(model_id)

    def load(
        self, model_id: str, vram_bytes: int, *, timeout: float | None = None
    ) -> bool:
        """
        Book *vram_bytes* for *model_id*, evicting least recently used idle
        models until it fits.

        A model already loaded is touched and, if *vram_bytes* differs, booked
        again at the new size. Evict callbacks for the models evicted have
        returned when this returns.

        Args:
            model_id: the model.
            vram_bytes: the memory it needs, >= 0.
            timeout: how long to wait, in seconds, for models in use (or being
                loaded) to free enough memory; None or 0 fail at once.
                Evictions already under way are always waited for, except
                from inside an evict callback.

        Returns:
            True if the model was not loaded before.

        Raises:
            ModelTooLargeError: *vram_bytes* is over the whole budget.
            ResourceBusyError: it fits only by evicting models in use, being
                loaded or being evicted; nothing was changed.
            InvalidConfigError: an argument is not valid.

        .. versionadded:: 0.1.0
        """
        self._check_load(model_id, vram_bytes)
        deadline = _deadline(timeout)
        with self._lock:
            victims = self._make_room_locked(
                model_id, vram_bytes, deadline, may_wait=True
            )
            new = self._book_locked(model_id, vram_bytes, _NO_HANDLE)
        self._run_callbacks(victims)
        return new

    async def load_async(
        self, model_id: str, vram_bytes: int, *, timeout: float | None = None
    ) -> bool:
        """
        `load`, waiting without blocking the event loop; evict callbacks run
        in a worker thread.

        .. versionadded:: 0.1.0
        """
        self._check_load(model_id, vram_bytes)
        deadline = _deadline(timeout)

        def attempt() -> tuple[list[tuple[str, int]], bool]:
            victims = self._make_room_locked(
                model_id, vram_bytes, deadline, may_wait=False
            )
            return victims, self._book_locked(model_id, vram_bytes, _NO_HANDLE)

        victims, new = await self._locked_async(attempt)
        if victims:
            await asyncio.to_thread(self._run_callbacks, victims)
        return new

    def evict(self, model_id: str) -> None:
        """
        Unload *model_id* now; the evict callback has returned when this returns.

        Raises:
            ModelNotLoadedError: the model is not loaded.
            ResourceBusyError: the model is in use; it is never pulled from
                under a request.

        .. versionadded:: 0.1.0
        """
        self._run_callbacks(self._evict_one(model_id))

    async def evict_async(self, model_id: str) -> None:
        """
        `evict`, running the evict callback in a worker thread.

        .. versionadded:: 0.1.0
        """
        victims = self._evict_one(model_id)
        await asyncio.to_thread(self._run_callbacks, victims)

    # -- pinning -----------------------------------------------------------

    @contextlib.contextmanager
    def use(self, model_id: str) -> Iterator[ModelInfo]:
        """
        Mark *model_id* in use for the ``with`` block, so it is not evicted.

        Uses nest and count: the model is idle again when the last one ends.
        Entering and leaving both touch the model. ``with`` works in async
        code too, as it never waits; `use_async` is the ``async with`` form.

        Yields:
            The model as it was when the block began.

        Raises:
            ModelNotLoadedError: the model is not loaded.

        .. versionadded:: 0.1.0
        """
        info = self._pin(model_id)
        try:
            yield info
        finally:
            self._unpin(model_id)

    @contextlib.asynccontextmanager
    async def use_async(self, model_id: str) -> AsyncIterator[ModelInfo]:
        """
        `use` as an ``async with`` block.

        .. versionadded:: 0.1.0
        """
        with self.use(model_id) as info:
            yield info

    # -- single-flight loading ---------------------------------------------

    def ensure_loaded(
        self,
        model_id: str,
        vram_bytes: int,
        loader: Callable[[], _T],
        *,
        timeout: float | None = None,
    ) -> _T:
        """
        Return the model's handle, running *loader* first if it is not loaded.

        Concurrent callers for the same cold model run one loader: the first
        books the memory (evicting as `load` does, callbacks first), runs
        *loader*, and books the model with the value it returns as its
        handle; the others wait for it and return that handle, or raise the
        same exception (and share its booking, whatever *vram_bytes* they
        passed). A loader that raises leaves nothing booked, and the next
        call runs a loader again. A model booked by `load` has no handle
        yet, so its loader runs once too, the model pinned meanwhile.

        Args:
            model_id: the model.
            vram_bytes: the memory it needs, >= 0.
            loader: loads the model and returns its handle.
            timeout: as for `load`; it bounds the wait for memory, not the
                loader.

        Raises:
            ModelTooLargeError: *vram_bytes* is over the whole budget.
            ResourceBusyError: as for `load`; also when this thread is the
                one running the model's loader (a loader loading its own
                model), as waiting for it would never end.
            Exception: whatever *loader* raised.

        .. versionadded:: 0.1.0
        """
        return self._ensure(model_id, vram_bytes, loader, timeout, pin=False)

    async def ensure_loaded_async(
        self,
        model_id: str,
        vram_bytes: int,
        loader: Callable[[], Awaitable[_T]],
        *,
        timeout: float | None = None,
    ) -> _T:
        """
        `ensure_loaded` with an async *loader*, never blocking the event loop.

        Sync and async callers for the same model share one loader run.
        If the task running the loader is cancelled, nothing stays booked and
        the callers waiting on it start the load again.

        .. versionadded:: 0.1.0
        """
        return await self._ensure_async(
            model_id, vram_bytes, loader, timeout, pin=False
        )

    @contextlib.contextmanager
    def loaded(
        self,
        model_id: str,
        vram_bytes: int,
        loader: Callable[[], _T],
        *,
        timeout: float | None = None,
    ) -> Iterator[_T]:
        """
        `ensure_loaded` and `use` in one step, for one request.

        The model is pinned in the same step that finds or books it, so no
        other load can evict it in between.

        Yields:
            The model's handle.

        .. versionadded:: 0.1.0
        """
        handle = self._ensure(model_id, vram_bytes, loader, timeout, pin=True)
        try:
            yield handle
        finally:
            self._unpin(model_id)

    @contextlib.asynccontextmanager
    async def loaded_async(
        self,
        model_id: str,
        vram_bytes: int,
        loader: Callable[[], Awaitable[_T]],
        *,
        timeout: float | None = None,
    ) -> AsyncIterator[_T]:
        """
        `loaded` as an ``async with`` block with an async *loader*.

        .. versionadded:: 0.1.0
        """
        handle = await self._ensure_async(
            model_id, vram_bytes, loader, timeout, pin=True
        )
        try:
            yield handle
        finally:
            self._unpin(model_id)

    # -- internals ---------------------------------------------------------

    def _check_load(self, model_id: str, vram_bytes: int) -> None:
        _check_model_id(model_id)
        _check_count(vram_bytes, "vram_bytes")
        if vram_bytes > self._budget:
            raise ModelTooLargeError(model_id, vram_bytes, self._budget)

    def _notify_locked(self) -> None:
        self._changed.notify_all()
        if self._async_waiters:
            waiters, self._async_waiters = self._async_waiters, []
            for loop, future in waiters:
                with contextlib.suppress(RuntimeError):  # the loop has closed
                    loop.call_soon_threadsafe(_resolve, future)

    async def _locked_async(self, attempt: Callable[[], _R]) -> _R:
        """
        Run *attempt* under the lock until it stops raising _WouldBlockError,
        awaiting each change of the books in between.
        """
        while True:
            with self._lock:
                try:
                    return attempt()
                except _WouldBlockError as block:
                    remaining = block.remaining
                    future = asyncio.get_running_loop().create_future()
                    self._async_waiters.append((future.get_loop(), future))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(future, remaining)

    def _make_room_locked(
        self, model_id: str, vram_bytes: int, deadline: float | None, *, may_wait: bool
    ) -> list[tuple[str, int]]:
        """
        Evict idle models until *vram_bytes* for *model_id* fit, or wait, or fail.

        Returns the evicted ``(id, bytes)``, already off the books and in
        ``_releases``; the caller books the model in the same lock hold and
        then runs `_run_callbacks` on them outside the lock. Evictions under
        way are always waited for (they end when their callback returns);
        models in use and loads in progress only until *deadline*.
        """
        while True:
            entry = self._models.get(model_id)
            old = 0 if entry is None else entry.vram_bytes
            need = vram_bytes - old
            free = self._budget - self._used - self._loading - self._releasing
            idle = self._used - self._pinned
            if entry is not None and entry.pins == 0:
                idle -= old
            if model_id not in self._releases:
                if need <= free:
                    return []
                if need <= free + idle:
                    return self._evict_lru_locked(need - free, model_id)
            # Waiting for our own callbacks would never end, so a load made
            # from inside an evict callback does not wait for evictions.
            in_callback = getattr(self._local, "depth", 0) > 0
            remaining = None if deadline is None else deadline - time.monotonic()
            if (
                self._releases
                and not in_callback
                and (remaining is None or remaining > 0)
            ) or (remaining is not None and remaining > 0):
                if not may_wait:
                    raise _WouldBlockError(remaining)
                self._changed.wait(remaining)
                continue
            raise self._busy_error(model_id, vram_bytes, waited=deadline is not None)

    def _busy_error(
        self, model_id: str, vram_bytes: int, *, waited: bool
    ) -> ResourceBusyError:
        busy = self._pinned + self._loading + self._releasing
        if model_id in self._releases:
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

    def _evict_lru_locked(self, amount: int, keep: str) -> list[tuple[str, int]]:
        victims: list[tuple[str, int]] = []
        freed = 0
        for mid, entry in self._models.items():
            if freed >= amount:
                break
            if entry.pins or mid == keep:
                continue
            victims.append((mid, entry.vram_bytes))
            freed += entry.vram_bytes
        for mid, size in victims:
            self._release_locked(mid, size, hold=False)
        return victims

    def _release_locked(self, model_id: str, size: int, *, hold: bool) -> None:
        """
        Take a model off the books. With *hold*, its bytes stay booked (as
        releasing) until its callback returns; without, the caller books
        them for the model that displaced it, which its caller loads only
        after the callbacks return.
        """
        del self._models[model_id]
        self._used -= size
        held = size if hold else 0
        self._releasing += held
        self._releases[model_id] = held

    def _book_locked(self, model_id: str, vram_bytes: int, handle: object) -> bool:
        now = self._clock()
        entry = self._models.get(model_id)
        if entry is None:
            self._models[model_id] = _Entry(vram_bytes, now, handle)
            self._used += vram_bytes
            return True
        delta = vram_bytes - entry.vram_bytes
        entry.vram_bytes = vram_bytes
        self._used += delta
        if entry.pins:
            self._pinned += delta
        entry.last_used = now
        if handle is not _NO_HANDLE:
            entry.handle = handle
        self._models.move_to_end(model_id)
        if delta < 0:
            self._notify_locked()
        return False

    def _evict_one(self, model_id: str) -> list[tuple[str, int]]:
        with self._lock:
            entry = self._models.get(model_id)
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
            self._release_locked(model_id, entry.vram_bytes, hold=True)
            return [(model_id, entry.vram_bytes)]

    def _run_callbacks(self, victims: list[tuple[str, int]]) -> None:
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
        self._releasing -= self._releases.pop(model_id)
        self._notify_locked()

    def _pin_locked(self, model_id: str, entry: _Entry) -> ModelInfo:
        entry.pins += 1
        if entry.pins == 1:
            self._pinned += entry.vram_bytes
        entry.last_used = self._clock()
        self._models.move_to_end(model_id)
        return ModelInfo(
            model_id, entry.vram_bytes, entry.loaded_at, entry.last_used, entry.pins
        )

    def _pin(self, model_id: str) -> ModelInfo:
        with self._lock:
            entry = self._models.get(model_id)
            if entry is None:
                raise ModelNotLoadedError(model_id)
            return self._pin_locked(model_id, entry)

    def _unpin_locked(self, model_id: str) -> None:
        # A pinned model cannot be evicted, so its entry is still there.
        entry = self._models[model_id]
        entry.pins -= 1
        entry.last_used = self._clock()
        self._models.move_to_end(model_id)
        if entry.pins == 0:
            self._pinned -= entry.vram_bytes
            self._notify_locked()

    def _unpin(self, model_id: str) -> None:
        with self._lock:
            self._unpin_locked(model_id)

    def _join_locked(
        self, model_id: str, vram_bytes: int, deadline: float | None, *, pin: bool
    ) -> tuple[_Flight | None, bool, object]:
        """
        Return ``(None, False, handle)`` for a loaded model (pinned if *pin*),
        ``(flight, False, None)`` to wait on a loader that is running, or
        ``(flight, True, None)`` when the caller must run the loader.
        """
        entry = self._models.get(model_id)
        if entry is not None and entry.handle is not _NO_HANDLE:
            if pin:
                self._pin_locked(model_id, entry)
            else:
                entry.last_used = self._clock()
                self._models.move_to_end(model_id)
            return None, False, entry.handle
        flight = self._flights.get(model_id)
        if flight is not None:
            return flight, False, None
        flight = _Flight(model_id, vram_bytes, deadline, pin=pin)
        self._flights[model_id] = flight
        return flight, True, None

    def _reserve_locked(
        self, flight: _Flight, *, may_wait: bool
    ) -> list[tuple[str, int]]:
        """
        Make room and hold it for *flight*'s loader; return the victims.

        A failure other than having to wait ends the flight with that error.
        """
        model_id, vram_bytes = flight.model_id, flight.vram_bytes
        try:
            victims = self._make_room_locked(
                model_id, vram_bytes, flight.deadline, may_wait=may_wait
            )
        except _WouldBlockError:
            raise
        except BaseException as exc:
            self._settle_locked(flight, None, exc)
            raise
        entry = self._models.get(model_id)
        if entry is None:
            self._loading += vram_bytes
            flight.reserved = vram_bytes
        else:
            self._book_locked(model_id, vram_bytes, _NO_HANDLE)
            self._pin_locked(model_id, entry)
            flight.warm = True
        return victims

    def _settle_locked(
        self, flight: _Flight, handle: object, error: BaseException | None
    ) -> None:
        """
        End *flight* (once): book the model on success, release what it held,
        wake the waiters.
        """
        if flight.done:
            return
        model_id = flight.model_id
        self._loading -= flight.reserved
        flight.reserved = 0
        if flight.warm:
            self._unpin_locked(model_id)
        if error is None:
            self._book_locked(model_id, flight.vram_bytes, handle)
            if flight.pin:
                self._pin_locked(model_id, self._models[model_id])
        elif isinstance(error, Exception):
            flight.error = error
        del self._flights[model_id]
        flight.done = True
        self._notify_locked()

    def _settle(
        self, flight: _Flight, handle: object, error: BaseException | None
    ) -> None:
        with self._lock:
            self._settle_locked(flight, handle, error)

    def _self_wait_error(self, model_id: str) -> ResourceBusyError:
        msg = (
            f"model {model_id!r} is being loaded by this same thread (a loader "
            "that loads its own model, or a blocking call from the event loop "
            "running its async loader); waiting for it would never end"
        )
        return ResourceBusyError(model_id, msg, budget_bytes=self._budget)

    @staticmethod
    def _check_done(flight: _Flight) -> None:
        if not flight.done:
            raise _WouldBlockError(None)

    def _ensure(
        self,
        model_id: str,
        vram_bytes: int,
        loader: Callable[[], _T],
        timeout: float | None,
        *,
        pin: bool,
    ) -> _T:
        self._check_load(model_id, vram_bytes)
        deadline = _deadline(timeout)
        while True:
            victims: list[tuple[str, int]] = []
            with self._lock:
                flight, leader, handle = self._join_locked(
                    model_id, vram_bytes, deadline, pin=pin
                )
                if flight is not None and leader:
                    victims = self._reserve_locked(flight, may_wait=True)
                elif flight is not None:
                    if flight.thread == threading.get_ident():
                        raise self._self_wait_error(model_id)
                    while not flight.done:
                        self._changed.wait()
            if flight is None:
                return cast("_T", handle)
            if not leader:
                if flight.error is not None:
                    raise flight.error
                continue  # the model is loaded now, or its loader was interrupted
            try:
                self._run_callbacks(victims)
                result = loader()
            except BaseException as exc:
                self._settle(flight, None, exc)
                raise
            self._settle(flight, result, None)
            return result

    async def _ensure_async(
        self,
        model_id: str,
        vram_bytes: int,
        loader: Callable[[], Awaitable[_T]],
        timeout: float | None,
        *,
        pin: bool,
    ) -> _T:
        self._check_load(model_id, vram_bytes)
        deadline = _deadline(timeout)
        while True:
            with self._lock:
                flight, leader, handle = self._join_locked(
                    model_id, vram_bytes, deadline, pin=pin
                )
            if flight is None:
                return cast("_T", handle)
            if not leader:
                await self._locked_async(functools.partial(self._check_done, flight))
                if flight.error is not None:
                    raise flight.error
                continue
            try:
                victims = await self._locked_async(
                    functools.partial(self._reserve_locked, flight, may_wait=False)
                )
                if victims:
                    # A worker thread finishes the callbacks even if we are cancelled.
                    await asyncio.to_thread(self._run_callbacks, victims)
                result = await loader()
            except BaseException as exc:
                self._settle(flight, None, exc)
                raise
            self._settle(flight, result, None)
            return result
