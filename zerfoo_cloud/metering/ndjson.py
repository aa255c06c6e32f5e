"""
NDJSON usage recorders: one JSON object per line.

`NDJSONRecorder` writes to a stream; `NDJSONFileRecorder` appends to a file
that it rotates by size without losing a line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from zerfoo_cloud.errors import InvalidConfigError, StoreError, StoreFullError

if TYPE_CHECKING:
    from zerfoo_cloud.metering.events import UsageEvent

__all__ = ["FsyncPolicy", "NDJSONFileRecorder", "NDJSONRecorder"]


class NDJSONRecorder:
    """
    Write each `UsageEvent` as one JSON line to a stream, flushed per event.

    *stream* is a text stream (``sys.stdout``, ``io.StringIO``, a file opened
    for append) or a binary one. Lines are never interleaved between threads.

    .. versionadded:: 0.1.0
    """

    def __init__(self, stream: IO[str] | IO[bytes]) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def record(self, event: UsageEvent) -> None:
        """
        Write *event* and a newline in one write, then flush.
        """
        line = event.to_json() + "\n"
        with self._lock:
            stream: IO[Any] = self.stream
            try:
                stream.write(line)
            except TypeError:
                stream.write(line.encode())
            stream.flush()


FsyncPolicy = Literal["never", "batch", "always"]
_FSYNC_POLICIES = ("never", "batch", "always")


class NDJSONFileRecorder:
    """
    Append each `UsageEvent` as one JSON line to a file, rotating it by size.

    Every line goes to the file in one ``write`` under a lock, so lines are
    never interleaved or split between threads; a write that fails half-way
    (a full disk) is cut back to the last whole line and raises. When a line
    would take the file past *max_bytes*, the file is first renamed to
    ``<path>.1`` (``.1`` to ``.2`` and so on, the oldest of *backups* dropped)
    and a new one started; a line longer than *max_bytes* gets a file of its
    own. Rotation never loses a line. Use one recorder per file: several
    processes appending to one path would rotate it under each other.

    Args:
        path: the file; created with mode 0600 if missing, appended to if not.
        fsync: ``"never"`` leaves writing back to the operating system;
            ``"batch"`` fsyncs in `flush` (which `TokenMeter` calls after each
            batch of events) and before a rotation; ``"always"`` fsyncs every
            line.
        max_bytes: rotate before the file would exceed this size; ``0``
            never rotates.
        backups: how many rotated files to keep, at least 1 when rotating.

    Raises:
        InvalidConfigError: a bad option.
        StoreError: the file cannot be opened.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: FsyncPolicy = "batch",
        max_bytes: int = 0,
        backups: int = 5,
    ) -> None:
        if fsync not in _FSYNC_POLICIES:
            msg = f"fsync must be one of {_FSYNC_POLICIES}, not {fsync!r}"
            raise InvalidConfigError(msg, field="fsync")
        if (
            isinstance(max_bytes, bool)
            or not isinstance(max_bytes, int)
            or max_bytes < 0
        ):
            msg = f"max_bytes must be a non-negative integer, not {max_bytes!r}"
            raise InvalidConfigError(msg, field="max_bytes")
        if isinstance(backups, bool) or not isinstance(backups, int) or backups < 0:
            msg = f"backups must be a non-negative integer, not {backups!r}"
            raise InvalidConfigError(msg, field="backups")
        if max_bytes and not backups:
            msg = "rotating without backups would delete events: set backups >= 1"
            raise InvalidConfigError(msg, field="backups")
        self.path = Path(path)
        self.fsync: FsyncPolicy = fsync
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._dirty = False
        self._fd = -1
        self._size = 0
        self._open()

    def _open(self) -> None:
        try:
            fd = os.open(
                self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
        except OSError as exc:
            msg = f"cannot open the usage file {str(self.path)!r}: {exc}"
            raise StoreError(msg) from exc
        self._fd = fd
        self._size = os.fstat(fd).st_size

    def record(self, event: UsageEvent) -> None:
        """
        Append *event* as one line.

        Raises:
            StoreFullError: the disk (or the file size limit) is full; the
                file still ends with a whole line.
            StoreError: another write error, or the recorder is closed.
        """
        data = (event.to_json() + "\n").encode()
        with self._lock:
            if self._fd < 0:
                msg = f"the usage file {str(self.path)!r} is closed"
                raise StoreError(msg)
            if (
                self.max_bytes
                and self._size
                and self._size + len(data) > self.max_bytes
            ):
                self._rotate()
            self._append(data)

    def _append(self, data: bytes) -> None:
        fd = self._fd
        start = self._size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self.fsync == "always":
                os.fsync(fd)
        except OSError as exc:
            # Cut a half-written line back off, so the file stays whole lines.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            msg = f"cannot append to the usage file {str(self.path)!r}: {exc}"
            full = exc.errno in {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
            raise (StoreFullError(msg) if full else StoreError(msg)) from exc
        self._size = start + len(data)
        self._dirty = True

    def _rotate(self) -> None:
        if self.fsync != "never":
            os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        for i in range(self.backups - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                self._backup(i).replace(self._backup(i + 1))
        self.path.replace(self._backup(1))
        self._open()
        if self.fsync != "never":
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def _backup(self, number: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{number}")

    def flush(self) -> None:
        """
        With ``fsync="batch"`` (or ``"always"``), fsync what was written.
        """
        with self._lock:
            if self._dirty and self._fd >= 0 and self.fsync != "never":
                os.fsync(self._fd)
            self._dirty = False

    def close(self) -> None:
        """
        Flush and close the file. Calling it twice is harmless.
        """
        self.flush()
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
