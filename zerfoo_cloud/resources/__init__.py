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

The package holds one concept a module: the records (``_records``), the
pure budget bookkeeping (``_books``), argument checks (``_checks``), a
loader run (``_flight``), the locked core the synchronous and async methods
share (``_core``), the async methods (``_async``) and the manager itself
(``_manager``).
"""

from __future__ import annotations

from zerfoo_cloud._nvml import GPUMemory, gpu_memory
from zerfoo_cloud._safetensors import (
    DEFAULT_KV_CACHE_FRACTION,
    MAX_HEADER_BYTES,
    estimate_vram_bytes,
)
from zerfoo_cloud.resources._manager import ResourceManager
from zerfoo_cloud.resources._records import EvictCallback, ModelInfo, ResourceUsage

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
