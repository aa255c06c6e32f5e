"""
One request passing through `zerfoo_cloud.http.proxy.UpstreamProxy`: its
body read from the client, and the watch for the client leaving.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from zerfoo_cloud.http._proxy_types import Message, Receive, Send

__all__ = ["ClientGoneError", "Exchange", "take_back_cancel"]


class ClientGoneError(Exception):
    """
    The client disconnected while its request body was being forwarded.
    """


def take_back_cancel() -> None:
    """
    Take back the cancellation the exchange asked for when its client left,
    now handled (Python 3.11 and later count cancellations).
    """
    task = asyncio.current_task()
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        uncancel()


class Exchange:
    """
    The state of one request passing through; never shared between requests.
    """

    __slots__ = (
        "body_done",
        "bytes_sent",
        "client_gone",
        "finished",
        "receive",
        "request_id",
        "send",
        "started",
        "task",
    )

    def __init__(self, receive: Receive, send: Send, request_id: str | None) -> None:
        self.receive = receive
        self.send = send
        self.request_id = request_id
        self.task = asyncio.current_task()
        self.body_done: asyncio.Event | None = None
        self.bytes_sent = 0
        #: Whether the response's status and headers went to the client.
        self.started = False
        self.client_gone = False
        self.finished = False

    async def request_content(self) -> bytes | AsyncIterator[bytes]:
        """
        The request body: bytes when it came in one message, else a stream.
        """
        message = await self.receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        first: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            return first
        self.body_done = asyncio.Event()
        return self._stream(first)

    async def _stream(self, first: bytes) -> AsyncIterator[bytes]:
        if first:
            yield first
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                raise ClientGoneError
            chunk: bytes = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                break
        assert self.body_done is not None
        self.body_done.set()

    async def watch_disconnect(self) -> None:
        """
        Once the body is read, wait for the client to leave and cancel the
        exchange's task.
        """
        if self.body_done is not None:
            await self.body_done.wait()
        message: Message = await self.receive()
        while message["type"] != "http.disconnect":
            message = await self.receive()
        # A server also reports a disconnect once the response is complete;
        # only one that comes while the exchange runs is the client leaving.
        if not self.finished and self.task is not None:
            self.client_gone = True
            self.task.cancel()
