"""
`CoalescedWrites`: a transport that joins the writes of one event-loop turn.

uvicorn writes a response's head and its body with one ``transport.write``
each, and each write to a socket is a system call and a packet of its own.
Wrapped in `CoalescedWrites`, the writes a connection makes in one turn of
the event loop go out as one, at the end of the turn, in the order they
were made. Nothing waits longer than that turn: a streamed response's chunks
still leave as they are sent.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["CoalescedWrites"]


class CoalescedWrites:
    """
    *transport*, with the writes made in one event-loop turn sent as one.

    ``write`` and ``writelines`` keep the data and, on the first of a turn,
    schedule `flush` with ``call_soon``; ``close``, ``write_eof`` and
    ``set_protocol`` flush first, ``abort`` drops what is kept. Everything
    else is the transport's own.
    """

    __slots__ = ("_loop", "_parts", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._loop = asyncio.get_running_loop()
        self._parts: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send *data* at the end of this event-loop turn, after earlier writes."""
        if not data:
            return
        if not self._parts:
            self._loop.call_soon(self.flush)
        self._parts.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        """`write` each of *lines*."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Send what the writes of this turn kept, as one write."""
        parts = self._parts
        if parts:
            self._parts = []
            if not self.transport.is_closing():
                self.transport.write(parts[0] if len(parts) == 1 else b"".join(parts))

    def get_write_buffer_size(self) -> int:
        """The transport's buffered bytes and those kept for this turn."""
        kept = sum(len(part) for part in self._parts)
        return int(self.transport.get_write_buffer_size()) + kept

    def close(self) -> None:
        """Send what was kept, then close the transport."""
        self.flush()
        self.transport.close()

    def write_eof(self) -> None:
        """Send what was kept, then close the write side."""
        self.flush()
        self.transport.write_eof()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Send what was kept, then hand the transport to *protocol*."""
        self.flush()
        self.transport.set_protocol(protocol)

    def abort(self) -> None:
        """Drop what was kept and abort the transport."""
        self._parts = []
        self.transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)
