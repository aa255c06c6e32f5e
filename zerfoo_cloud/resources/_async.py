"""
The ``_async`` methods of `ResourceManager`: the same steps as the
synchronous ones, from the shared core, awaiting instead of blocking.

A step that would wait raises `WouldBlockError` under the lock; the method
then awaits the next change of the books and tries again. Evict callbacks
run in a worker thread, so the event loop never blocks on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar, cast

from zerfoo_cloud.resources._books import NO_HANDLE, Victims
from zerfoo_cloud.resources._checks import deadline as make_deadline
from zerfoo_cloud.resources._core import ManagerCore
from zerfoo_cloud.resources._flight import WouldBlockError

if TYPE_CHECKING:
    from zerfoo_cloud.resources._flight import EnsureCall, Flight
    from zerfoo_cloud.resources._records import ModelInfo

__all__ = ["AsyncMethods"]

_T = TypeVar("_T")
_R = TypeVar("_R")


class AsyncMethods(ManagerCore):
    """
    The methods of `ResourceManager` that never block the event loop.
    """

    async def load_async(
        self, model_id: str, vram_bytes: int, *, timeout: float | None = None
    ) -> bool:
        """
        `load`, waiting without blocking the event loop; evict callbacks run
        in a worker thread.

        .. versionadded:: 0.1.0
        """
        self._check_load(model_id, vram_bytes)
        deadline = make_deadline(timeout)

        def attempt() -> tuple[Victims, bool]:
            victims = self._make_room_locked(
                model_id, vram_bytes, deadline, may_wait=False
            )
            return victims, self._book_locked(model_id, vram_bytes, NO_HANDLE)

        victims, new = await self._locked_async(attempt)
        if victims:
            await asyncio.to_thread(self._run_callbacks, victims)
        return new

    async def evict_async(self, model_id: str) -> None:
        """
        `evict`, running the evict callback in a worker thread.

        .. versionadded:: 0.1.0
        """
        victims = self._evict_one(model_id)
        await asyncio.to_thread(self._run_callbacks, victims)

    @contextlib.asynccontextmanager
    async def use_async(self, model_id: str) -> AsyncIterator[ModelInfo]:
        """
        `use` as an ``async with`` block.

        .. versionadded:: 0.1.0
        """
        with self._pinned(model_id) as info:
            yield info

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
            self._ensure_call(model_id, vram_bytes, timeout, pin=False), loader
        )

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
            self._ensure_call(model_id, vram_bytes, timeout, pin=True), loader
        )
        with self._unpinning(model_id):
            yield handle

    async def _locked_async(self, attempt: Callable[[], _R]) -> _R:
        """
        Run *attempt* under the lock until it stops raising WouldBlockError,
        awaiting each change of the books in between.
        """
        while True:
            with self._lock:
                try:
                    return attempt()
                except WouldBlockError as block:
                    remaining = block.remaining
                    future = asyncio.get_running_loop().create_future()
                    self._async_waiters.append((future.get_loop(), future))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(future, remaining)

    async def _ensure_async(
        self, call: EnsureCall, loader: Callable[[], Awaitable[_T]]
    ) -> _T:
        try:
            loaded, found = await self._locked_async(
                functools.partial(self._ensure_step_locked, call, may_wait=False)
            )
            if loaded:
                return cast("_T", found)
            if found:
                # A worker thread finishes the callbacks even if we are cancelled.
                await asyncio.to_thread(self._run_callbacks, cast("Victims", found))
            result = await loader()
        except BaseException as exc:
            if call.leader and call.flight is not None:
                self._settle(call.flight, None, exc)
            raise
        self._settle(cast("Flight", call.flight), result, None)
        return result
