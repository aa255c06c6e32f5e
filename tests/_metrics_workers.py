"""
Functions run in spawned worker processes by the multi-process metrics test.

Nothing here imports prometheus-client at module level: a worker must set
``PROMETHEUS_MULTIPROC_DIR`` before the first import, as a server worker
whose environment already has it would.
"""

from __future__ import annotations

import multiprocessing.synchronize
import os


def record_then_render(
    folder: str,
    requests: int,
    open_flights: int,
    vram_bytes: int,
    render_now: multiprocessing.synchronize.Event,
    out: multiprocessing.Queue[tuple[str, int, bytes]],
) -> None:
    """
    Record *requests* finished requests of tenant ``acme`` and one token
    rejection, leave *open_flights* requests in flight, book *vram_bytes* and
    then 50 more bytes in a real `ResourceManager`, report ``ready``, then, once *render_now* is set,
    send this worker's `Metrics.render` and exit.
    """
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    from zerfoo_cloud.metrics import Metrics
    from zerfoo_cloud.resources import ResourceManager

    metrics = Metrics()
    manager = ResourceManager(1000)
    manager.load("llama", vram_bytes)
    metrics.track_resources(manager)
    # Loaded after tracking: only the request path's refresh (due at once
    # here instead of after a second) can tell the other processes.
    manager.load("small", 50)
    metrics._next_refresh = 0.0
    for _ in range(requests):
        with metrics.request_started("acme") as flight:
            flight.finish("llama", "success", 1, 2, duration_s=0.1)
    metrics.rejected("acme", "tokens")
    flights = [metrics.request_started("acme") for _ in range(open_flights)]
    out.put(("ready", os.getpid(), b""))
    render_now.wait(60)
    out.put(("render", os.getpid(), metrics.render()))
    assert all(f.active for f in flights)
