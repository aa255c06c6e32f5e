"""
`ResourceManager`: a GPU-memory budget for many models, with
least-recently-used eviction that never takes a model away from a request
using it. The package docstring of `zerfoo_cloud.resources` describes it.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar, cast

from zerfoo_cloud._nvml import read_device
from zerfoo_cloud.errors import InvalidConfigError, ModelNotLoadedError
from zerfoo_cloud.resources._async import AsyncMethods
from zerfoo_cloud.resources._books import NO_HANDLE
from zerfoo_cloud.resources._checks import check_count
from zerfoo_cloud.resources._checks import deadline as make_deadline

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.resources._books import Victims
    from zerfoo_cloud.resources._flight import EnsureCall, Flight
    from zerfoo_cloud.resources._records import (
        EvictCallback,
        ModelInfo,
        ResourceUsage,
    )

__all__ = ["ResourceManager"]

_T = TypeVar("_T")


class ResourceManager(AsyncMethods):
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
        check_count(device_index, "device_index")
        check_count(reserve_bytes, "reserve_bytes")
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
            return model_id in self._books.models

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
            return self._books.used, self._budget, len(self._books.models)

    def usage(self) -> ResourceUsage:
        """
        Return where the budget goes now, including loads and evictions in progress.

        .. versionadded:: 0.1.0
        """
        with self._lock:
            return self._books.usage()

    def loaded_models(self) -> list[ModelInfo]:
        """
        Return the loaded models, most recently used first.

        .. versionadded:: 0.1.0
        """
        with self._lock:
            return self._books.infos()

    # -- booking -----------------------------------------------------------

    def touch(self, model_id: str) -> None:
        """
        Mark *model_id* as used now, making it the last to be evicted.

        Raises:
            ModelNotLoadedError: the model is not loaded.

        .. versionadded:: 0.1.0
        """
        with self._lock:
            models = self._books.models
            entry = models.get(model_id)
            if entry is None:
                raise ModelNotLoadedError(model_id)
            entry.last_used = self._clock()
            models.move_to_end(model_id)

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
        deadline = make_deadline(timeout)
        with self._lock:
            victims = self._make_room_locked(
                model_id, vram_bytes, deadline, may_wait=True
            )
            new = self._book_locked(model_id, vram_bytes, NO_HANDLE)
        self._run_callbacks(victims)
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
        with self._pinned(model_id) as info:
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
        return self._ensure(
            self._ensure_call(model_id, vram_bytes, timeout, pin=False), loader
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
        handle = self._ensure(
            self._ensure_call(model_id, vram_bytes, timeout, pin=True), loader
        )
        with self._unpinning(model_id):
            yield handle

    # -- internals ---------------------------------------------------------

    def _ensure(self, call: EnsureCall, loader: Callable[[], _T]) -> _T:
        with self._lock:
            loaded, found = self._ensure_step_locked(call, may_wait=True)
        if loaded:
            return cast("_T", found)
        flight = cast("Flight", call.flight)
        try:
            self._run_callbacks(cast("Victims", found))
            result = loader()
        except BaseException as exc:
            self._settle(flight, None, exc)
            raise
        self._settle(flight, result, None)
        return result
