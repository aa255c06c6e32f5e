"""
The frames between an LMDB writer process and its parent: length-prefixed
pickles over the child's stdin and stdout. Only a parent and its own child
write to these pipes.

Reads and writes here block until they are done even on a descriptor that
is non-blocking: an event loop may make it so behind our back (uvloop's
``add_reader`` sets ``O_NONBLOCK`` on the pipe from the child, for good,
and the parent's writer thread reads the same pipe), and failing with
`BlockingIOError` would be taken for a dead child.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
from typing import Any

__all__ = [
    "LENGTH",
    "PROTOCOL",
    "read_frame",
    "read_some",
    "write_all",
    "write_frame",
]

#: The length prefix of every frame.
LENGTH = struct.Struct(">I")
#: The pickle protocol of every frame.
PROTOCOL = 5


def write_frame(fd: int, message: object) -> None:
    """Write *message* to *fd* as one frame."""
    data = pickle.dumps(message, PROTOCOL)
    write_all(fd, LENGTH.pack(len(data)) + data)


def _wait(fd: int, events: int) -> None:
    # Until *fd* is ready (or broken: the next call then says how).
    poller = select.poll()
    poller.register(fd, events)
    poller.poll()


def write_all(fd: int, data: bytes) -> None:
    """Write all of *data* to *fd*, waiting for room if it is non-blocking."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:  # noqa: PERF203 - only once the pipe is full
            _wait(fd, select.POLLOUT)


def read_some(fd: int, size: int) -> bytes:
    """
    Read at most *size* bytes from *fd*, waiting for them if it is
    non-blocking; ``b""`` once the pipe is closed.
    """
    while True:
        try:
            return os.read(fd, size)
        except BlockingIOError:  # noqa: PERF203 - only before the answer is in
            _wait(fd, select.POLLIN)


def _read_exact(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = read_some(fd, size - len(data))
        if not more:
            raise EOFError
        data += more
    return data


def read_frame(fd: int) -> Any:
    """
    Read one frame from *fd*.

    Raises:
        EOFError: the pipe closed first.
    """
    (size,) = LENGTH.unpack(_read_exact(fd, LENGTH.size))
    return pickle.loads(_read_exact(fd, size))  # noqa: S301 - our own child's pipe
