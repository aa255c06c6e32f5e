"""
`HostLock`: a lock file that one process of a host holds at a time (an
outbox's drainer, an alert outbox's sender); the kernel releases it when
its holder dies.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
from pathlib import Path

__all__ = ["HostLock"]


class HostLock:
    """
    An exclusive ``flock`` on the file *path*, opened on first use (mode
    0600). Not reentrant: one holder in this process at a time is the
    caller's business.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._open_lock = threading.Lock()

    def acquire(self, *, wait: bool = False) -> bool:
        """
        Take the lock, waiting for it when *wait*; return whether it is held
        (``False``: another process holds it and *wait* is false).
        """
        with self._open_lock:
            if self._fd is None:
                self._fd = os.open(
                    self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
                )
            fd = self._fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as exc:
            if exc.errno in {errno.EWOULDBLOCK, errno.EAGAIN}:
                return False
            raise
        return True

    def release(self) -> None:
        """
        Let the lock go.
        """
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """
        Close the file (which lets the lock go).
        """
        with self._open_lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def forked(self) -> None:  # pragma: no cover - runs in forked children
        """
        In a forked child: drop the inherited descriptor (it shares the
        parent's lock; closing it leaves that lock alone).
        """
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None
        self._open_lock = threading.Lock()
