"""
Folders a process opens once: `FolderRegistry` creates a folder, names it by
device and inode, and hands out one object per folder, reference counted.

LMDB must not open an environment twice in one process (its locks are per
process), so `zerfoo_cloud.stores.lmdb.LMDBStores` and
`zerfoo_cloud.stores.outbox.Outbox` each keep one registry.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from zerfoo_cloud._fork import on_fork
from zerfoo_cloud.errors import StoreError

__all__ = ["FolderRegistry"]

T = TypeVar("T")


class FolderRegistry(Generic[T]):
    """
    One object per folder in this process, made by the first `open` and
    closed by its owner when `release` says the last reference went.

    *what* names the folders in messages (``"store"``, ``"outbox"``).
    """

    def __init__(self, what: str) -> None:
        self.what = what
        #: Held while an object is made or its references change.
        self.lock = threading.Lock()
        self._open: dict[tuple[int, int], tuple[T, int]] = {}
        on_fork(self._forked)

    def _forked(self) -> None:  # pragma: no cover - runs in forked children
        # The objects stay valid (they reopen what they hold), so the
        # mapping may stay too; a lock held by a parent's thread may not.
        with contextlib.suppress(RuntimeError):
            self.lock = threading.Lock()

    def open(self, path: str | os.PathLike[str], make: Callable[[Path], T]) -> T:
        """
        The object of folder *path* (created with mode 0700 if missing):
        the open one, with one more reference, or ``make(folder)``.

        Raises:
            StoreError: the folder cannot be created or read.
        """
        folder = Path(path)
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = folder.stat()
        except OSError as exc:
            msg = f"cannot create the {self.what} folder {str(folder)!r}: {exc}"
            raise StoreError(msg) from exc
        key = (st.st_dev, st.st_ino)
        with self.lock:
            found = self._open.get(key)
            if found is not None:
                self._open[key] = (found[0], found[1] + 1)
                return found[0]
            made = make(folder)
            self._open[key] = (made, 1)
            return made

    def release(self, held: T) -> bool:
        """
        Drop one reference to *held*; return whether it was the last (its
        owner closes it then). Releasing what is not open returns ``False``.
        """
        with self.lock:
            for key, (obj, refs) in self._open.items():
                if obj is held:
                    if refs > 1:
                        self._open[key] = (obj, refs - 1)
                        return False
                    del self._open[key]
                    return True
        return False

    def holds(self, held: T) -> bool:
        """
        Whether *held* is open (has references left).
        """
        return self.references(held) > 0

    def references(self, held: T) -> int:
        """
        How many references to *held* are open (0 once it is closed).
        """
        with self.lock:
            return sum(refs for obj, refs in self._open.values() if obj is held)
