"""
The records a `ResourceManager` reports: `ModelInfo` for one loaded model,
`ResourceUsage` for the whole budget, and the `EvictCallback` type.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

__all__ = ["EvictCallback", "ModelInfo", "ResourceUsage"]

#: Called with the id of each evicted model, outside the manager's lock.
EvictCallback = Callable[[str], object]


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
