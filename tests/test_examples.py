"""
The examples run and show what they promise.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str) -> str:
    """
    Run examples/*name* with this interpreter and return its output.
    """
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=EXAMPLES,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_demo_shows_every_outcome() -> None:
    """make demo's script serves real requests and ends with a report and a verified chain."""
    out = run_example("demo.py")
    for expected in (
        "429 RateLimitError, Retry-After:",
        "403 PermissionDeniedError",
        "401 AuthenticationError",
        "GET /admin/tenants -> 200: ['acme', 'globex']",
        "audit log intact: 9 entries",
    ):
        assert expected in out
    report = out.split("== zerfoo-cloud usage report")[1]
    assert "acme    toy-1" in report
    assert "globex  toy-2" in report


def test_tenants_and_limits_example() -> None:
    """The store-only example shows the limits and the cross-process quota."""
    out = run_example("tenants_and_limits.py")
    assert "request 6: refused, retry in 12s" in out
    shared = re.search(
        r"(\d+) requests left; this process spent (\d+), another process (\d+): "
        r"together (\d+)",
        out,
    )
    assert shared is not None, out
    left, here, there, together = map(int, shared.groups())
    assert left >= 99
    assert here == 60
    assert together == here + there == left
