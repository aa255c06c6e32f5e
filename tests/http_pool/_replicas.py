"""
Model server replicas for the pool tests: a small OpenAI-like ASGI app that
counts what it sees, served by uvicorn in a thread on a fixed port of
127.0.0.1 so it can be stopped and started again at the same address.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

import uvicorn

from tests.http._support import send_json, start_event_stream, wait_until

Scope = dict[str, Any]

#: Content chunks of a streamed answer.
STREAM_CHUNKS = 5


class ReplicaApp:
    """
    An OpenAI-like model server named *name* serving *models*.

    ``GET /v1/models`` answers *models_status* with *models_body* when
    set, else the list of *models*. A chat completion answers JSON naming the replica (with
    usage), or, with ``"stream": true``, `STREAM_CHUNKS` SSE chunks (the app
    raises after *die_after* chunks when it is set). While *hold* is set,
    each completion waits until it is released. Every completion request is
    kept in *seen* (its body), every models request counted in *listed*,
    and every ``Authorization`` value kept in *keys*.
    """

    def __init__(self, name: str, models: list[str]) -> None:
        self.name = name
        self.models = models
        self.models_body: bytes | None = None
        self.models_status = 200
        self.seen: list[bytes] = []
        self.listed = 0
        self.hold: threading.Event | None = None
        self.in_flight = 0
        self.die_after: int | None = None
        self.delay = 0.0
        self.chunk_gap = 0.01
        self.keys: set[bytes] = set()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.keys.update(v for k, v in scope["headers"] if k == b"authorization")
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/v1/models":
            self.listed += 1
            listing = self.models_body
            if listing is None:
                data = [
                    {"id": m, "object": "model", "owned_by": self.name}
                    for m in self.models
                ]
                listing = json.dumps({"object": "list", "data": data}).encode()
            await send_json(send, listing, self.models_status)
            return
        self.seen.append(body)
        self.in_flight += 1
        try:
            await self._complete(send, json.loads(body) if body else {})
        finally:
            self.in_flight -= 1

    async def _complete(self, send: Any, request: dict[str, Any]) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        hold = self.hold
        # A thread's event, polled: a worker thread per held request would
        # run out of threads.
        while hold is not None and not hold.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        if not request.get("stream"):
            answer = {
                "id": "c1",
                "object": "chat.completion",
                "model": request.get("model", ""),
                "served_by": self.name,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "hi"}}
                ],
                "usage": {
                    "prompt_tokens": 3,
                    "completion_tokens": 2,
                    "total_tokens": 5,
                },
            }
            await send_json(send, json.dumps(answer).encode())
            return
        await start_event_stream(send)
        for i in range(STREAM_CHUNKS):
            if self.die_after is not None and i == self.die_after:
                msg = "the model server crashed"
                raise RuntimeError(msg)
            chunk = {
                "id": "c1",
                "object": "chat.completion.chunk",
                "model": request.get("model", ""),
                "choices": [{"index": 0, "delta": {"content": f"w{i} "}}],
            }
            data = f"data: {json.dumps(chunk)}\n\n".encode()
            await send({"type": "http.response.body", "body": data, "more_body": True})
            await asyncio.sleep(self.chunk_gap)
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


class ReplicaServer:
    """
    *app* served by uvicorn in a thread on one port, which `stop` frees and
    `start` takes again.
    """

    def __init__(self, app: ReplicaApp) -> None:
        self.app = app
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def start(self) -> ReplicaServer:
        """Serve on the port (waiting for it to be free again)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 10
        while True:
            try:
                sock.bind(("127.0.0.1", self.port))
                break
            except OSError:
                assert time.monotonic() < deadline, "the port did not come free"
                time.sleep(0.05)
        server = uvicorn.Server(
            uvicorn.Config(self.app, log_level="critical", lifespan="off", http="h11")
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
        thread.start()
        assert wait_until(lambda: server.started, 10), "the replica did not start"
        self._server, self._thread, self._sock = server, thread, sock
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is None:
            return
        assert self._thread is not None
        assert self._sock is not None
        self._server.should_exit = True
        self._server.force_exit = True
        self._thread.join(10)
        self._sock.close()
        assert not self._thread.is_alive(), "the replica did not stop"
        self._server = self._thread = self._sock = None
