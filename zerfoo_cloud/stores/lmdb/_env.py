"""
One LMDB environment, safe for threads and for forked worker processes.

LMDB itself is safe for many threads and processes; three things are not, and
this module takes care of them:

- The memory map may only be resized while no transaction of this process is
  open. Every transaction passes a gate (a counter under a lock); a resize
  waits until the gate is empty.
- An environment must not be used in a child after ``fork()``. A fork hook
  drops the inherited handle and the child opens its own on first use.
- An environment must not be opened twice in one process (LMDB's locks are
  per process). `zerfoo_cloud.stores.lmdb.LMDBStores.open` keeps a registry.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import lmdb

from zerfoo_cloud._fork import reset_in_child
from zerfoo_cloud.errors import StoreError, StoreFullError

__all__ = ["Environment"]

T = TypeVar("T")

#: Start with a map this large; it doubles when full.
DEFAULT_MAP_SIZE = 64 << 20
#: Never grow the map past this; then writes raise `StoreFullError`.
DEFAULT_MAX_MAP_SIZE = 1 << 40
MAX_DBS = 32
MAX_READERS = 1024


class _Gate:
    """
    Counts open transactions; `exclusive` waits until there are none.

    `enter` and `leave` take the bare lock (a C-level context manager) and
    touch the condition only while a resize is pending: they run around
    every transaction.
    """

    __slots__ = ("_active", "_cond", "_lock", "_resizing")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._active = 0
        self._resizing = False

    def enter(self) -> None:
        with self._lock:
            if not self._resizing:
                self._active += 1
                return
            while self._resizing:
                self._cond.wait()
            self._active += 1

    def leave(self) -> None:
        with self._lock:
            self._active -= 1
            if self._resizing and self._active == 0:
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._resizing = True
            while self._active:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._resizing = False
                self._cond.notify_all()


#: With less free space than this, a failed write counts as a full disk.
_LOW_SPACE = 1 << 20


def _is_disk_full(exc: BaseException) -> bool:
    code = getattr(exc, "errno", None)
    if code in {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}:
        return True
    text = str(exc)
    return "No space left" in text or "File too large" in text


def _out_of_space(path: str) -> bool:
    # LMDB turns a short write (what a full disk or the file size limit
    # gives) into EIO; tell that case apart by looking at the space left.
    try:
        st = os.statvfs(path)
        size = Path(path, "data.mdb").stat().st_size
    except OSError:  # pragma: no cover - the folder vanished
        return False
    if st.f_bavail * st.f_frsize < _LOW_SPACE:
        return True  # pragma: no cover - needs a nearly full file system
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return soft != resource.RLIM_INFINITY and size + _LOW_SPACE > soft


class Environment:
    """
    A thread-safe LMDB environment with named databases.

    *durable* environments fsync every commit; volatile ones (limiter state)
    do not, and are rebuilt empty after a machine restart by their owner.
    *writemap* writes through the memory map instead of ``write()`` calls:
    a commit then costs no system call (for volatile environments, whose
    commits are not fsynced).
    """

    def __init__(
        self,
        path: str,
        names: Sequence[str],
        *,
        durable: bool,
        map_size: int = DEFAULT_MAP_SIZE,
        max_map_size: int = DEFAULT_MAX_MAP_SIZE,
        writemap: bool = False,
    ) -> None:
        self.path = path
        self.durable = durable
        self.writemap = writemap
        self._names = tuple(names)
        # A size limit below the initial size wins: the map starts at the limit.
        self._initial_map_size = min(map_size, max_map_size)
        self.max_map_size = max_map_size
        self._gate = _Gate()
        self._open_lock = threading.Lock()
        self._closed = False
        self._env: Any = None
        self.dbs: dict[str, Any] = {}
        self._open()
        reset_in_child(self)

    # -- lifecycle --------------------------------------------------------

    def _open(self) -> None:
        try:
            env = lmdb.open(
                self.path,
                subdir=True,
                map_size=self._initial_map_size,
                max_dbs=MAX_DBS,
                max_readers=MAX_READERS,
                mode=0o600,
                sync=self.durable,
                metasync=self.durable,
                readahead=False,
                writemap=self.writemap,
                lock=True,
            )
        except lmdb.Error as exc:
            msg = (
                f"cannot open LMDB store at {self.path!r}: {exc}; check that the "
                "folder exists, is writable by this user, and is on a local disk"
            )
            raise StoreError(msg) from exc
        # Another process may have grown the map beyond what we asked for.
        with contextlib.suppress(lmdb.Error):
            env.set_mapsize(0)
        dbs = {}
        try:
            with env.begin(write=True) as txn:
                for name in self._names:
                    dbs[name] = env.open_db(name.encode(), txn=txn)
        except lmdb.Error as exc:
            env.close()
            msg = f"cannot open the databases of LMDB store {self.path!r}: {exc}"
            raise StoreError(msg) from exc
        self._env = env
        # Updated in place: stores keep a reference to this dict and look
        # handles up per call, so a reopened environment (after fork) serves
        # them without their knowing.
        self.dbs.clear()
        self.dbs.update(dbs)

    def handles(self) -> dict[str, Any]:
        """
        The named databases' handles, by name. In a forked child the
        environment is reopened first, so the handles are the child's own.
        """
        if self._env is None:
            self._handle()
        return self.dbs

    @property
    def initial_map_size(self) -> int:
        """
        The map size the environment was opened with (before any growth).
        """
        return self._initial_map_size

    def _forked(self) -> None:  # pragma: no cover - runs in forked children
        # The child must not use the parent's handle. Closing it here only
        # unmaps and closes file descriptors: reader slots and file locks
        # belong to the parent's pid and stay untouched.
        if self._env is not None:
            with contextlib.suppress(lmdb.Error):
                self._env.close()
        self._env = None
        self._gate = _Gate()
        self._open_lock = threading.Lock()

    def _handle(self) -> Any:
        env = self._env
        if env is None:
            with self._open_lock:
                if self._closed:
                    msg = f"LMDB store {self.path!r} is closed"
                    raise StoreError(msg)
                if self._env is None:  # pragma: no cover - after fork only
                    self._open()
                env = self._env
        return env

    def close(self) -> None:
        """
        Close the environment; later use raises `StoreError`.
        """
        with self._open_lock:
            if self._closed:
                return
            self._closed = True
            env, self._env = self._env, None
        if env is not None:
            with self._gate.exclusive():
                env.close()

    @property
    def closed(self) -> bool:
        """
        Whether `close` was called.
        """
        return self._closed

    # -- transactions -----------------------------------------------------

    def read(self, fn: Callable[[Any], T]) -> T:
        """
        Run ``fn(txn)`` in a read-only transaction and return its result.
        """
        while True:
            env = self._handle()
            self._gate.enter()
            try:
                with env.begin(buffers=False) as txn:
                    return fn(txn)
            except lmdb.MapResizedError:
                pass
            except lmdb.Error as exc:
                raise self._wrap(exc) from exc
            finally:
                self._gate.leave()
            self._adopt_new_size()

    def write(self, fn: Callable[[Any], T]) -> T:
        """
        Run ``fn(txn)`` in a write transaction, commit, and return its result.

        A full map is grown (doubled, up to `max_map_size`) and *fn* run again;
        so *fn* must have no effect outside the transaction. A map that cannot
        grow further, or a full disk, raises `StoreFullError`: nothing of the
        transaction is kept.
        """
        while True:
            env = self._env or self._handle()
            gate = self._gate
            gate.enter()
            try:
                with env.begin(write=True) as txn:
                    return fn(txn)
            except lmdb.MapFullError:
                size = env.info()["map_size"]
            except lmdb.MapResizedError:
                size = -1
            except lmdb.Error as exc:
                raise self._wrap(exc) from exc
            except OSError as exc:
                raise self._wrap(exc) from exc
            finally:
                gate.leave()
            if size < 0:
                self._adopt_new_size()
            else:
                self._grow(size)

    def sync(self) -> None:
        """
        Flush everything committed so far to the disk.
        """
        env = self._handle()
        self._gate.enter()
        try:
            env.sync(True)
        except lmdb.Error as exc:
            raise self._wrap(exc) from exc
        finally:
            self._gate.leave()

    def info(self) -> dict[str, int]:
        """
        Return LMDB's environment info (``map_size``, ``last_pgno``, ...).
        """
        return dict(self._handle().info())

    def stat(self, name: str) -> dict[str, int]:
        """
        Return LMDB's statistics of the named database (``entries``, ...).
        """
        return self.read(lambda txn: dict(txn.stat(self.dbs[name])))

    def _adopt_new_size(self) -> None:
        env = self._handle()
        with self._gate.exclusive():
            env.set_mapsize(0)

    def _grow(self, failed_at: int) -> None:
        env = self._handle()
        with self._gate.exclusive():
            current = env.info()["map_size"]
            if current > failed_at:
                return  # another thread grew it meanwhile
            if current >= self.max_map_size:
                msg = (
                    f"LMDB store {self.path!r} reached its size limit of "
                    f"{self.max_map_size} bytes; raise max_map_size, or purge old "
                    "records, then retry: nothing was written"
                )
                raise StoreFullError(msg)
            try:
                env.set_mapsize(min(current * 2, self.max_map_size))
            except lmdb.Error as exc:
                raise self._wrap(exc) from exc

    def _wrap(self, exc: BaseException) -> StoreError:
        if _is_disk_full(exc) or (
            "Input/output error" in str(exc) and _out_of_space(self.path)
        ):
            return StoreFullError(
                f"the disk holding LMDB store {self.path!r} is full ({exc}); free "
                "space and retry: nothing was written"
            )
        if isinstance(exc, lmdb.ReadonlyError):
            return StoreError(
                f"LMDB store {self.path!r} is read-only ({exc}); open it with "
                "write access"
            )
        return StoreError(f"LMDB store {self.path!r} failed: {exc}")
