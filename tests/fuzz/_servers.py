"""
Real servers in threads on 127.0.0.1 and a free port: uvicorn for ASGI apps,
waitress for WSGI apps.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import uvicorn
import waitress
from waitress import wasyncore

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Seconds a server may take to start or stop.
WAIT = 20.0


@contextlib.contextmanager
def serve_asgi(app: Any) -> Iterator[tuple[str, int]]:
    """Serve *app* (with its lifespan) with uvicorn in a thread; yield its address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="critical", lifespan="on", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        deadline = time.monotonic() + WAIT
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield ("127.0.0.1", port)
    finally:
        server.should_exit = True
        thread.join(WAIT)
        sock.close()
        assert not thread.is_alive()


@contextlib.contextmanager
def serve_wsgi(app: Any) -> Iterator[tuple[str, int]]:
    """Serve *app* with waitress in a thread; yield its address."""
    server = waitress.create_server(
        app, host="127.0.0.1", port=0, threads=4, channel_timeout=30
    )
    port: int = server.effective_port
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        yield ("127.0.0.1", port)
    finally:
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(WAIT)
        server.task_dispatcher.shutdown()
        assert not thread.is_alive()
