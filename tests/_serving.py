"""
Running ``zerfoo-cloud serve``, upstream servers and Python code as
processes: the command lines, a free port, a started process with its output
in a log, and a finished one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal

#: The repository root.
ROOT = Path(__file__).resolve().parents[1]
#: The folder of this Python's scripts (``zerfoo-cloud``).
BIN = Path(sys.executable).parent


def free_port() -> int:
    """
    A TCP port nothing listens on now.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve_command(db: Path, *args: str) -> list[str]:
    """
    The command line of ``zerfoo-cloud --db DB serve ARGS``.
    """
    return [str(BIN / "zerfoo-cloud"), "--db", str(db), "serve", *args]


def uvicorn_command(target: str, port: int, *args: str) -> list[str]:
    """
    The command line of uvicorn serving *target* on *port*, then *args*.
    """
    return [sys.executable, "-m", "uvicorn", target, "--port", str(port), *args]


def spawn(
    args: list[str],
    *,
    cwd: Path,
    out: IO[Any],
    env: dict[str, str] | None = None,
    text: bool = False,
) -> subprocess.Popen[Any]:
    """
    Start *args* in *cwd* with *env* over this environment, its output and
    errors both to *out*.
    """
    return subprocess.Popen(
        args,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=out,
        stderr=subprocess.STDOUT,
        text=text,
    )


def stop(proc: subprocess.Popen[Any]) -> None:
    """
    Terminate *proc* and wait for it; kill it if it does not end in 20 s.
    """
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def run_python(
    code: str,
    *args: str,
    timeout: float = 60,
    cwd: Path | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """
    Run *code* (dedented) in a fresh interpreter and return the finished
    process; with *check*, one that fails raises.
    """
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=check,
    )


def run_cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """
    Run ``zerfoo-cloud --db DB ARGS`` as a process and return what it did.
    """
    return subprocess.run(
        [str(BIN / "zerfoo-cloud"), "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@contextmanager
def served_in_thread(
    app: Any, *, lifespan: Literal["auto", "on", "off"] = "on"
) -> Iterator[str]:
    """
    Serve the ASGI *app* with uvicorn in a thread of this process, on
    127.0.0.1 and a free port; yield its base URL, and stop it after.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan=lifespan, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn stopped"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()
    assert not thread.is_alive()
