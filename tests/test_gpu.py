"""
GPU budgets through NVML, with a stand-in ``pynvml`` module for the driver
and no-driver cases.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

import pytest

from zerfoo_cloud import (
    CloudError,
    GPUUnavailableError,
    InvalidConfigError,
    ResourceManager,
)
from zerfoo_cloud.resources import GPUMemory, gpu_memory

GIB = 1024**3


class FakeNVMLError(Exception):
    """What pynvml raises: an NVMLError carrying a status."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return {9: "Driver Not Loaded", 2: "Invalid Argument"}.get(
            self.value, "Unknown Error"
        )


class MemoryInfo:
    def __init__(self, total: int, used: int) -> None:
        self.total = total
        self.used = used
        self.free = total - used


def fake_nvml(
    devices: list[tuple[str | bytes, int, int]],
    *,
    init_error: int | None = None,
    fail_on: str | None = None,
) -> tuple[types.ModuleType, dict[str, int]]:
    """Build a pynvml stand-in over *devices* (name, total, used), counting calls."""
    calls = {"init": 0, "shutdown": 0}
    module = types.ModuleType("pynvml")

    def hook(name: str, fn: Callable[..., Any]) -> None:
        def wrapped(*args: Any) -> Any:
            if name == fail_on:
                raise FakeNVMLError(999)
            return fn(*args)

        setattr(module, name, wrapped)

    def init() -> None:
        if init_error is not None:
            raise FakeNVMLError(init_error)
        calls["init"] += 1

    def shutdown() -> None:
        calls["shutdown"] += 1

    def handle(index: int) -> int:
        if not 0 <= index < len(devices):
            raise FakeNVMLError(2)
        return index

    module.NVMLError = FakeNVMLError  # type: ignore[attr-defined]
    hook("nvmlInit", init)
    hook("nvmlShutdown", shutdown)
    hook("nvmlDeviceGetCount", lambda: len(devices))
    hook("nvmlDeviceGetHandleByIndex", handle)
    hook("nvmlDeviceGetName", lambda h: devices[h][0])
    hook("nvmlDeviceGetMemoryInfo", lambda h: MemoryInfo(devices[h][1], devices[h][2]))
    return module, calls


TWO_GPUS: list[tuple[str | bytes, int, int]] = [
    ("NVIDIA H100 80GB HBM3", 80 * GIB, 1 * GIB),
    (b"NVIDIA A10G", 24 * GIB, 0),
]


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Two fake GPUs visible through a stand-in pynvml module."""
    module, calls = fake_nvml(TWO_GPUS)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    return calls


def test_gpu_memory_reports_every_device(nvml: dict[str, int]) -> None:
    """gpu_memory lists total, used and free memory per GPU and shuts NVML down."""
    assert gpu_memory() == [
        GPUMemory(0, "NVIDIA H100 80GB HBM3", 80 * GIB, 1 * GIB, 79 * GIB),
        GPUMemory(1, "NVIDIA A10G", 24 * GIB, 0, 24 * GIB),
    ]
    assert nvml == {"init": 1, "shutdown": 1}


def test_from_gpu_budgets_a_fraction_of_the_total(nvml: dict[str, int]) -> None:
    """from_gpu sets the budget to floor(total * fraction) - reserve_bytes."""
    rm = ResourceManager.from_gpu()
    assert rm.budget_bytes == int(80 * GIB * 0.9)
    rm = ResourceManager.from_gpu(1, fraction=0.5, reserve_bytes=GIB)
    assert rm.budget_bytes == 12 * GIB - GIB
    assert nvml == {"init": 2, "shutdown": 2}


@pytest.mark.parametrize("fraction", [1, 1.0, 1e-9])
def test_fraction_at_its_limits_is_accepted(
    nvml: dict[str, int], fraction: float
) -> None:
    """A fraction of exactly 1, or just above 0, is accepted."""
    rm = ResourceManager.from_gpu(fraction=fraction)
    assert rm.budget_bytes == int(80 * GIB * fraction)


@pytest.mark.parametrize("fraction", [0, 0.0, -0.1, 1.0000001, 1.5, float("nan"), True])
def test_fraction_out_of_range_is_refused(
    nvml: dict[str, int], fraction: float
) -> None:
    """A fraction of 0, below it, just past 1, NaN or a bool raises InvalidConfigError before NVML."""
    with pytest.raises(InvalidConfigError) as info:
        ResourceManager.from_gpu(fraction=fraction)
    assert info.value.field == "fraction"
    assert nvml["init"] == 0


def test_reserve_bytes_limits(nvml: dict[str, int]) -> None:
    """reserve_bytes of 0 is accepted, -1 refused, and one that leaves no budget refused."""
    total = 24 * GIB
    assert (
        ResourceManager.from_gpu(1, fraction=1, reserve_bytes=0).budget_bytes == total
    )
    assert (
        ResourceManager.from_gpu(1, fraction=1, reserve_bytes=total - 1).budget_bytes
        == 1
    )
    with pytest.raises(InvalidConfigError, match="leaves no budget"):
        ResourceManager.from_gpu(1, fraction=1, reserve_bytes=total)
    with pytest.raises(InvalidConfigError) as info:
        ResourceManager.from_gpu(1, reserve_bytes=-1)
    assert info.value.field == "reserve_bytes"


def test_device_index_must_exist(nvml: dict[str, int]) -> None:
    """A device index past the last GPU raises GPUUnavailableError naming the count; -1 is refused."""
    with pytest.raises(
        GPUUnavailableError, match=r"no GPU with index 2 \(NVML sees 2\)"
    ):
        ResourceManager.from_gpu(2)
    assert nvml["init"] == nvml["shutdown"] == 1
    with pytest.raises(InvalidConfigError):
        ResourceManager.from_gpu(-1)


def test_no_driver_raises_gpu_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    """When NVML cannot start (no driver), a clear GPUUnavailableError is raised."""
    module, calls = fake_nvml([], init_error=9)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    with pytest.raises(
        GPUUnavailableError, match=r"Driver Not Loaded.*NVIDIA driver"
    ) as info:
        ResourceManager.from_gpu()
    assert isinstance(info.value, CloudError)
    assert isinstance(info.value.__cause__, FakeNVMLError)
    with pytest.raises(GPUUnavailableError):
        gpu_memory()
    assert calls["shutdown"] == 0


def test_no_nvidia_ml_py_raises_gpu_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the pynvml module the error says nvidia-ml-py is missing."""
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(GPUUnavailableError, match="nvidia-ml-py"):
        gpu_memory()


@pytest.mark.parametrize(
    "fail_on", ["nvmlDeviceGetCount", "nvmlDeviceGetName", "nvmlDeviceGetMemoryInfo"]
)
def test_nvml_failure_mid_read_is_wrapped_and_shuts_down(
    monkeypatch: pytest.MonkeyPatch, fail_on: str
) -> None:
    """An NVML error after start becomes GPUUnavailableError, and NVML is still shut down."""
    module, calls = fake_nvml(TWO_GPUS, fail_on=fail_on)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    with pytest.raises(GPUUnavailableError, match="NVML failed"):
        gpu_memory()
    assert calls == {"init": 1, "shutdown": 1}


def test_real_nvml_without_a_gpu_raises_gpu_unavailable() -> None:
    """The real nvidia-ml-py either reads a GPU or raises GPUUnavailableError, nothing else."""
    message = ""
    try:
        devices = gpu_memory()
    except GPUUnavailableError as exc:
        devices, message = [], str(exc)
    assert devices or message.startswith("cannot read GPU memory")
    assert all(d.total > 0 and d.free <= d.total for d in devices)
