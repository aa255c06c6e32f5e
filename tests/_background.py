"""
A server command run in the background until it answers ``/healthz``.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

#: The line uvicorn logs once it listens (the real port, also for ``--port 0``).
LISTENING = re.compile(r"running on (?:https?://)?([\d.]+):(\d+)")
#: Seconds a server may take to start on a loaded machine.
START_TIMEOUT = 60.0


@contextmanager
def serving(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
) -> Iterator[str]:
    """
    Start *args*, wait until it listens and answers ``/healthz``, yield its base URL.

    The process runs in a session of its own, and its process group is
    stopped (SIGTERM, then SIGKILL) when the block ends. If it
    exits or stays silent for `START_TIMEOUT` seconds, the test fails with its
    output.
    """
    log_path = cwd / f".server-{time.monotonic_ns()}.log"
    with log_path.open("w+") as log:
        proc = subprocess.Popen(
            list(args),
            cwd=cwd,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            yield _wait_ready(proc, log_path)
        finally:
            _stop(proc)
    log_path.unlink(missing_ok=True)


def _wait_ready(proc: subprocess.Popen[str], log_path: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    base = None
    while True:
        if base is None:
            found = LISTENING.search(log_path.read_text(errors="replace"))
            if found:
                base = f"http://127.0.0.1:{found.group(2)}"
        if base is not None:
            try:
                if httpx.get(base + "/healthz", timeout=5).status_code == 200:
                    return base
            except httpx.TransportError:
                pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(
                f"{proc.args!r} did not answer /healthz "
                f"(exit code {proc.poll()}):\n{log_path.read_text(errors='replace')}"
            )
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, 15)
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait(10)
    except ProcessLookupError:
        proc.wait(10)
