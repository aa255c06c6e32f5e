"""
`zerfoo_cloud._coalesced_writes.CoalescedWrites` over a real socket
transport: the writes of one event-loop turn go out as one, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from zerfoo_cloud._coalesced_writes import CoalescedWrites


class _Counted:
    """A real transport, with the writes that reach it counted."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


async def _pair(
    act: Callable[[CoalescedWrites], Awaitable[None]],
) -> tuple[list[bytes], bytes]:
    """Run *act* on a served connection; the writes that reached the socket
    and every byte the client read before the server closed."""
    done = asyncio.get_running_loop().create_future()

    class Server(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            counted = _Counted(transport)
            wrapped = CoalescedWrites(counted)  # type: ignore[arg-type]

            async def run() -> None:
                await act(wrapped)
                done.set_result(counted.writes)

            asyncio.ensure_future(run())  # noqa: RUF006 - awaited through done

    server = await asyncio.get_running_loop().create_server(Server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    got = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), 10):
            got += chunk
    except ConnectionResetError:
        pass  # an aborted connection
    writes: list[bytes] = await done
    writer.close()
    server.close()
    await server.wait_closed()
    return writes, got


def test_the_writes_of_one_turn_leave_as_one() -> None:
    """A head and a body written in one turn reach the socket in one write."""

    async def act(t: CoalescedWrites) -> None:
        t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        t.write(b"ok")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        t.close()

    writes, got = asyncio.run(_pair(act))
    assert writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    assert got == writes[0]


def test_writes_of_later_turns_leave_in_order_and_close_sends_the_rest() -> None:
    """Each turn's writes leave at its end; close sends what is kept first."""

    async def act(t: CoalescedWrites) -> None:
        t.write(b"a")
        t.writelines([b"b", bytearray(b"c")])
        t.write(b"")
        await asyncio.sleep(0.01)
        t.write(b"d")
        await asyncio.sleep(0.01)
        t.write(b"e")
        t.close()

    writes, got = asyncio.run(_pair(act))
    assert writes == [b"abc", b"d", b"e"]
    assert got == b"abcde"


def test_abort_drops_what_was_kept() -> None:
    """Aborting sends nothing kept in the turn."""

    async def act(t: CoalescedWrites) -> None:
        t.write(b"sent")
        await asyncio.sleep(0.01)
        t.write(b"dropped")
        assert t.get_write_buffer_size() >= len(b"dropped")
        t.abort()

    writes, got = asyncio.run(_pair(act))
    assert writes == [b"sent"]
    assert got == b"sent"
