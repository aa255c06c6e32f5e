"""
The TCP connections this test process holds open to a server port, read
from the process's own file descriptors, so a test can see a client that
left a connection open without waiting for the garbage collector.
"""

from __future__ import annotations

import socket
from pathlib import Path

#: Where the process's open file descriptors are listed (Linux).
_FD_DIR = Path("/proc/self/fd")


def connections_to(port: int, host: str = "127.0.0.1") -> int:
    """
    How many sockets of this process are connected to *host*:*port*.

    A socket whose peer has closed its side (TCP ``CLOSE_WAIT``) still counts:
    it is the one a client forgot to close.
    """
    count = 0
    for entry in _FD_DIR.iterdir():
        try:
            fd = int(entry.name)
            if not str(entry.readlink()).startswith("socket:"):
                continue
            # fromfd duplicates the descriptor: closing the copy leaves it open.
            with socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM) as copy:
                peer = copy.getpeername()
        except (OSError, ValueError):
            continue  # gone meanwhile, or not a connected socket
        # An IP peer is a tuple (host, port, ...); a Unix one is a str or bytes.
        if isinstance(peer, tuple) and peer[:2] == (host, port):
            count += 1
    return count
