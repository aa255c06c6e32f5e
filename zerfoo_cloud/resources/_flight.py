"""
One run of a model's loader, which concurrent callers of
`ResourceManager.ensure_loaded` (and its twins) wait on and share.
"""

from __future__ import annotations

import threading

import attrs

__all__ = ["EnsureCall", "Flight", "WouldBlockError"]


class Flight:
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
        #: Bytes held in ``Books.loading`` for a cold model.
        self.reserved = 0
        #: True when the model was already booked (by `load`) and is pinned
        #: while its loader runs.
        self.warm = False


class WouldBlockError(Exception):
    """
    Raised inside the lock when an async caller would have to wait.
    """

    def __init__(self, remaining: float | None) -> None:
        super().__init__()
        self.remaining = remaining


@attrs.define
class EnsureCall:
    """
    The progress of one `ResourceManager.ensure_loaded` call (or a twin)
    between the steps it takes under the lock.
    """

    model_id: str
    vram_bytes: int
    deadline: float | None
    pin: bool = attrs.field(kw_only=True)
    #: The loader run this call waits on or leads; None before it joins.
    flight: Flight | None = None
    #: True when this call runs the loader of ``flight``.
    leader: bool = False
