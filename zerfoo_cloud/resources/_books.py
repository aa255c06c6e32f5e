"""
The books of a memory budget: which models are loaded, in least-recently-used
order, how many bytes each holds, which are pinned, and the bytes held for
loads and evictions in progress.

`Books` is plain bookkeeping: no locks, no waiting, no callbacks. The
`ResourceManager` holds its lock around every call and decides when to wait.
"""

from __future__ import annotations

from collections import OrderedDict

from zerfoo_cloud.resources._records import ModelInfo, ResourceUsage

__all__ = ["NO_HANDLE", "Books", "Entry", "Victims"]

#: The handle of a model booked with `ResourceManager.load` (no loader ran).
NO_HANDLE: object = object()

#: Evicted models, in eviction order: ``(model id, bytes)``.
Victims = list[tuple[str, int]]


class Entry:
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


class Books:
    """
    The bytes of a *budget* booked by loaded models, loads and evictions.

    Every operation is O(1), apart from stepping over pinned models when
    choosing what to evict. The caller serialises access.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        #: Loaded models, least recently used first.
        self.models: OrderedDict[str, Entry] = OrderedDict()
        self.used = 0
        self.pinned = 0
        self.loading = 0
        self.releasing = 0
        #: Evicted models whose callback has not returned: id -> the bytes
        #: still counted in ``releasing`` for it (0 when the load that
        #: evicted it took them over).
        self.releases: dict[str, int] = {}

    def busy(self) -> int:
        """
        Bytes held by models in use, loads in progress and evictions under way.
        """
        return self.pinned + self.loading + self.releasing

    def usage(self) -> ResourceUsage:
        """
        Where the budget goes now.
        """
        return ResourceUsage(
            budget=self.budget,
            used=self.used,
            in_use=self.pinned,
            loading=self.loading,
            releasing=self.releasing,
        )

    def infos(self) -> list[ModelInfo]:
        """
        The loaded models, most recently used first.
        """
        return [
            ModelInfo(mid, e.vram_bytes, e.loaded_at, e.last_used, e.pins)
            for mid, e in reversed(self.models.items())
        ]

    def take_room(self, model_id: str, vram_bytes: int) -> Victims | None:
        """
        Make *vram_bytes* free for *model_id* by evicting idle models.

        Returns the evicted models (already off the books, held in
        ``releases`` with their bytes handed to *model_id*), or None when the
        room can only come from models in use, loading or being evicted, or
        while *model_id* itself is still being evicted; then nothing changed.
        """
        if model_id in self.releases:
            return None
        entry = self.models.get(model_id)
        old = 0 if entry is None else entry.vram_bytes
        need = vram_bytes - old
        free = self.budget - self.used - self.loading - self.releasing
        if need <= free:
            return []
        idle = self.used - self.pinned
        if entry is not None and entry.pins == 0:
            idle -= old
        if need > free + idle:
            return None
        victims: Victims = []
        freed = 0
        for mid, other in self.models.items():
            if freed >= need - free:
                break
            if other.pins or mid == model_id:
                continue
            victims.append((mid, other.vram_bytes))
            freed += other.vram_bytes
        for mid, size in victims:
            self.release(mid, size, hold=False)
        return victims

    def release(self, model_id: str, size: int, *, hold: bool) -> None:
        """
        Take a model off the books. With *hold*, its bytes stay booked (as
        releasing) until `finish_release`; without, the caller books them for
        the model that displaced it.
        """
        del self.models[model_id]
        self.used -= size
        held = size if hold else 0
        self.releasing += held
        self.releases[model_id] = held

    def finish_release(self, model_id: str) -> None:
        """
        End the eviction of *model_id*: the bytes it still held are free.
        """
        self.releasing -= self.releases.pop(model_id)

    def book(self, model_id: str, vram_bytes: int, handle: object, now: float) -> bool:
        """
        Book *vram_bytes* for *model_id* at time *now*, making it the most
        recently used; a model already booked is resized, and keeps its
        handle when *handle* is `NO_HANDLE`. Return True if it is new.
        """
        entry = self.models.get(model_id)
        if entry is None:
            self.models[model_id] = Entry(vram_bytes, now, handle)
            self.used += vram_bytes
            return True
        delta = vram_bytes - entry.vram_bytes
        entry.vram_bytes = vram_bytes
        self.used += delta
        if entry.pins:
            self.pinned += delta
        if handle is not NO_HANDLE:
            entry.handle = handle
        entry.last_used = now
        self.models.move_to_end(model_id)
        return False

    def touch(self, model_id: str, entry: Entry, now: float) -> None:
        """
        Mark *model_id* (whose entry is *entry*) used at *now*.
        """
        entry.last_used = now
        self.models.move_to_end(model_id)

    def pin(self, model_id: str, entry: Entry, now: float) -> ModelInfo:
        """
        Pin *model_id* once more, touching it; return it as it is now.
        """
        entry.pins += 1
        if entry.pins == 1:
            self.pinned += entry.vram_bytes
        self.touch(model_id, entry, now)
        return ModelInfo(
            model_id, entry.vram_bytes, entry.loaded_at, entry.last_used, entry.pins
        )

    def unpin(self, model_id: str, now: float) -> bool:
        """
        Drop one pin of *model_id*, touching it; return True if it is idle now.
        """
        # A pinned model cannot be evicted, so its entry is still there.
        entry = self.models[model_id]
        entry.pins -= 1
        self.touch(model_id, entry, now)
        if entry.pins:
            return False
        self.pinned -= entry.vram_bytes
        return True
