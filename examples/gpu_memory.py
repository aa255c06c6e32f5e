"""
Print every GPU's memory and the budget `ResourceManager.from_gpu` would use.

Run it on a machine with an NVIDIA GPU::

    python examples/gpu_memory.py [device_index] [fraction]

Where there is no GPU, driver or nvidia-ml-py, it says so and exits with 1.
"""

from __future__ import annotations

import sys

from zerfoo_cloud import GPUUnavailableError, ResourceManager
from zerfoo_cloud.resources import gpu_memory

GIB = 1024**3


def main(argv: list[str]) -> int:
    """
    Print the GPUs' memory and a manager's stats; return the exit status.
    """
    index = int(argv[0]) if argv else 0
    fraction = float(argv[1]) if len(argv) > 1 else 0.9
    try:
        devices = gpu_memory()
        rm = ResourceManager.from_gpu(index, fraction=fraction)
    except GPUUnavailableError as exc:
        print(f"no GPU to read: {exc}")
        return 1
    for d in devices:
        print(
            f"GPU {d.index}: {d.name}: total {d.total} B ({d.total / GIB:.2f} GiB), "
            f"used {d.used} B ({d.used / GIB:.2f} GiB), "
            f"free {d.free} B ({d.free / GIB:.2f} GiB)"
        )
    used, budget, loaded = rm.stats()
    print(
        f"ResourceManager.from_gpu({index}, fraction={fraction}): "
        f"budget {budget} B ({budget / GIB:.2f} GiB), used {used} B, loaded {loaded}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
