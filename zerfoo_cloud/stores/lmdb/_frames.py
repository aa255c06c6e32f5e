"""
The frames between an LMDB writer process and its parent: length-prefixed
pickles over the child's stdin and stdout. Only a parent and its own child
write to these pipes.
"""

from __future__ import annotations

import os
import pickle
import struct
from typing import Any

__all__ = ["LENGTH", "PROTOCOL", "read_frame", "write_all", "write_frame"]

#: The length prefix of every frame.
LENGTH = struct.Struct(">I")
#: The pickle protocol of every frame.
PROTOCOL = 5


def write_frame(fd: int, message: object) -> None:
    """Write *message* to *fd* as one frame."""
    data = pickle.dumps(message, PROTOCOL)
    write_all(fd, LENGTH.pack(len(data)) + data)


def write_all(fd: int, data: bytes) -> None:
    """Write all of *data* to *fd*."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = os.read(fd, size - len(data))
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
