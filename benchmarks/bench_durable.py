"""
What durable-by-default costs: requests per second through uvicorn with each
answer held until its billing record and audit entry are committed (the
default), against the opt-out (``durable=False``), side by side in one run.

The app is the minimal OpenAI-like app behind a model call of
`MODEL_MILLISECONDS` that keeps the CPU free, as a GPU does; one uvicorn
worker, billing and audit written from writer processes (as ``zerfoo-cloud
serve`` does), a keep-alive load generator in another process. The two modes
alternate `ROUNDS` times; the figures are the median of each, and the
per-request cost is the difference of the mean server time per request.
Target: durable serves at least 90 % of the opt-out's requests per second.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from benchmarks.bench_http import throughput

#: The model call of the served app, in ms.
MODEL_MILLISECONDS = 1
#: Alternating rounds of each mode.
ROUNDS = 3
#: Keep-alive connections of the load generator, a row each.
CONNECTIONS = (16, 64, 256)
#: The target: durable requests per second over the opt-out's.
TARGET = 0.90


def compare(folder: Path, connections: int) -> tuple[float, float]:
    """Median requests per second, durable and not, over alternating rounds."""
    app = f"model{MODEL_MILLISECONDS}"
    durable: list[float] = []
    fast: list[float] = []
    for _ in range(ROUNDS):
        fast.append(throughput(app, "not-durable", folder, connections=connections))
        durable.append(throughput(app, "wrapped", folder, connections=connections))
    return statistics.median(durable), statistics.median(fast)


def main() -> None:
    """Print both rates, their ratio and the cost per request."""
    print(
        f"Model call of {MODEL_MILLISECONDS} ms through uvicorn, one worker, "
        f"median of {ROUNDS} alternating rounds:"
    )
    print(
        f"{'connections':>12}{'durable req/s':>15}{'opt-out req/s':>15}"
        f"{'ratio':>7}{'added µs':>10}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "db"
        for connections in CONNECTIONS:
            durable, fast = compare(folder, connections)
            print(
                f"{connections:12}{durable:15.0f}{fast:15.0f}"
                f"{durable / fast:7.2f}{(1 / durable - 1 / fast) * 1e6:10.1f}"
            )
    print(
        f"  target: ratio >= {TARGET:.2f}; added µs: server time per request,"
        " durable minus opt-out"
    )


if __name__ == "__main__":
    main()
