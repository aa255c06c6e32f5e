"""
Concurrency-slot arguments of the limiter primitive: one slot or several.

`zerfoo_cloud.stores.protocols.LimiterStore.admit` takes ``(key, limit)``
(one slot), a sequence of them (several slots, taken together or not at
all: a tenant's and its key's) or ``None``; ``settle`` takes a slot key, a
sequence of them or ``None``. Every backend turns those into lists with
these two functions, so they read them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

__all__ = ["SlotKeys", "Slots", "slot_key_list", "slot_list"]

#: What `LimiterStore.admit` takes as its slot: ``(key, limit)``, several
#: of them, or ``None``.
Slots = tuple[str, int] | Sequence[tuple[str, int]] | None
#: What `LimiterStore.settle` takes as its slot key: one, several, or ``None``.
SlotKeys = str | Sequence[str] | None


def slot_list(slot: Slots) -> list[tuple[str, int]]:
    """
    The slots *slot* names, in order: none, one, or several.

    Raises:
        ValueError: several slots name one key twice.
    """
    if not slot:
        return []
    if isinstance(slot[0], str):
        return [cast("tuple[str, int]", slot)]
    slots = [(key, limit) for key, limit in cast("Sequence[tuple[str, int]]", slot)]
    if len({key for key, _ in slots}) != len(slots):
        msg = "the slots of one admission must have distinct keys"
        raise ValueError(msg)
    return slots


def slot_key_list(slot_key: SlotKeys) -> list[str]:
    """
    The slot keys *slot_key* names, in order: none, one, or several.
    """
    if slot_key is None:
        return []
    if isinstance(slot_key, str):
        return [slot_key]
    return list(slot_key)
