"""
Run every benchmark module (or those named on the command line).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import benchmarks


def main(argv: list[str]) -> int:
    """
    Run ``main()`` of each ``benchmarks.bench_*`` module, or of those in *argv*.
    """
    names = argv or sorted(
        m.name
        for m in pkgutil.iter_modules(benchmarks.__path__)
        if m.name.startswith("bench_")
    )
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        module.main()
        print(f"   ({time.perf_counter() - started:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
