"""
A real webhook receiver on 127.0.0.1 for the alert tests: it answers the
first *fail_first* deliveries with 500 (or keeps them waiting while
*hang* is set), then 200, and keeps every request it got.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import attrs


@attrs.frozen
class Received:
    """One request the receiver got: its headers (lower case) and body."""

    headers: dict[str, str]
    body: bytes


class Receiver:
    """The receiver's behaviour and what it got; safe for its threads."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.status = 200
        self.hang = threading.Event()
        self.release = threading.Event()
        self.received: list[Received] = []
        self.answered: list[int] = []
        self.lock = threading.Lock()
        self.url = ""

    def answer(self, request: Received) -> int:
        with self.lock:
            self.received.append(request)
            failing = len(self.received) <= self.fail_first
        if self.hang.is_set():
            self.release.wait(30)
            return 200
        status = 500 if failing else self.status
        with self.lock:
            self.answered.append(status)
        return status

    def ids(self) -> list[str]:
        with self.lock:
            return [r.headers["webhook-id"] for r in self.received]


@contextmanager
def receiving(fail_first: int = 0) -> Iterator[Receiver]:
    """Run a `Receiver` on a free port of 127.0.0.1 until the block ends."""
    receiver = Receiver(fail_first)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(size)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = receiver.answer(Received(headers, body))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/abc"
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
