"""
GPU memory read through NVML (the ``pynvml`` module of nvidia-ml-py).

Every call initialises NVML, reads, and shuts it down again, so nothing is
held between calls and a process without a GPU never loads the library
until it asks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import TypeVar

import attrs

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.errors import GPUUnavailableError, MissingExtraError

__all__ = ["GPUMemory", "gpu_memory", "read_device"]

_T = TypeVar("_T")


@attrs.frozen
class GPUMemory:
    """
    The memory of one GPU, in bytes, as NVML reported it.

    Attributes:
        index: the NVML device index (the order of ``nvidia-smi``).
        name: the device name, e.g. ``"NVIDIA H100 80GB HBM3"``.
        total: the device's memory.
        used: total minus free: what every process allocated plus what
            the driver reserves for itself.
        free: memory not allocated.

    .. versionadded:: 0.1.0
    """

    index: int
    name: str
    total: int
    used: int
    free: int


@contextmanager
def _nvml() -> Iterator[ModuleType]:
    """
    Initialise NVML for the block; every NVML failure becomes GPUUnavailableError.
    """
    try:
        with needs_extra("gpu", "reading GPU memory with nvidia-ml-py"):
            import pynvml
    except MissingExtraError as exc:
        raise GPUUnavailableError(str(exc)) from exc
    nvml_error: type[BaseException] = pynvml.NVMLError
    try:
        pynvml.nvmlInit()
    except nvml_error as exc:
        msg = (
            f"cannot read GPU memory: NVML did not start ({exc}); is an NVIDIA "
            "driver installed and a GPU visible to this process?"
        )
        raise GPUUnavailableError(msg) from exc
    try:
        yield pynvml
    except nvml_error as exc:
        msg = f"cannot read GPU memory: NVML failed ({exc})"
        raise GPUUnavailableError(msg) from exc
    finally:
        with contextlib.suppress(nvml_error):
            pynvml.nvmlShutdown()


def _device(pynvml: ModuleType, index: int) -> GPUMemory:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    name = pynvml.nvmlDeviceGetName(handle)
    if isinstance(name, bytes):  # nvidia-ml-py before 11.515 returned bytes
        name = name.decode("utf-8", "replace")
    info = pynvml.nvmlDeviceGetMemoryInfo(handle)
    return GPUMemory(
        index=index,
        name=str(name),
        total=int(info.total),
        used=int(info.used),
        free=int(info.free),
    )


def _with_nvml(read: Callable[[ModuleType], _T]) -> _T:
    with _nvml() as pynvml:
        return read(pynvml)


def read_device(index: int) -> GPUMemory:
    """
    Return the memory of GPU *index*.

    Raises:
        GPUUnavailableError: no nvidia-ml-py, no driver, or no such device.

    .. versionadded:: 0.1.0
    """

    def read(pynvml: ModuleType) -> GPUMemory:
        count = int(pynvml.nvmlDeviceGetCount())
        if not 0 <= index < count:
            msg = (
                f"cannot read GPU memory: no GPU with index {index} (NVML sees {count})"
            )
            raise GPUUnavailableError(msg)
        return _device(pynvml, index)

    return _with_nvml(read)


def gpu_memory() -> list[GPUMemory]:
    """
    Return the total, used and free memory of every NVIDIA GPU, by index.

    Raises:
        GPUUnavailableError: no nvidia-ml-py, no NVIDIA driver, or NVML
            failed; the message says which.

    .. versionadded:: 0.1.0
    """
    return _with_nvml(
        lambda pynvml: [
            _device(pynvml, i) for i in range(int(pynvml.nvmlDeviceGetCount()))
        ]
    )
