"""
LMDB stores: the embedded default, crash-safe and shared by every process of one host.

``LMDBStores.open(path)`` opens (or creates) a store folder and hands out one
store per role::

    stores = LMDBStores.open("/var/lib/zerfoo-cloud")
    tenants = TenantManager(stores.tenants, limits=stores.limits)

The folder holds two LMDB environments:

- ``data.mdb`` (durable): tenants, billing, audit, replay cache. Every commit
  is on disk when it returns; file mode 0600; a schema-version record is
  checked at open.
- ``limits/`` (volatile): rate-limit buckets and concurrency slots. Commits
  are not fsynced, because limiter state changes on every request and is
  worthless after a restart; it survives a killed process (the page cache
  keeps it) and is rebuilt empty after a machine restart, detected by the
  kernel's boot id, so a torn write after a power loss can never be read.

Every store is safe for many threads and many processes at once. Open a path
once per process: opening it again returns the same `LMDBStores` (reference
counted), since LMDB must not be opened twice in one process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from zerfoo_cloud.errors import SchemaMismatchError, StoreError
from zerfoo_cloud.stores._lmdb_audit import LMDBAuditStore
from zerfoo_cloud.stores._lmdb_billing import LMDBBillingStore
from zerfoo_cloud.stores._lmdb_env import (
    DEFAULT_MAP_SIZE,
    DEFAULT_MAX_MAP_SIZE,
    Environment,
)
from zerfoo_cloud.stores._lmdb_limits import LMDBLimiterStore
from zerfoo_cloud.stores._lmdb_replay import LMDBReplayCache
from zerfoo_cloud.stores._lmdb_tenants import LMDBTenantStore

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "SCHEMA_VERSION",
    "LMDBAuditStore",
    "LMDBBillingStore",
    "LMDBLimiterStore",
    "LMDBReplayCache",
    "LMDBStores",
    "LMDBTenantStore",
]

#: The version of the record layout this library writes and reads.
SCHEMA_VERSION = 1

_DURABLE_DBS = (
    "meta",
    "tenants",
    "tenant_keys",
    "replay",
    "replay_expiry",
    "billing",
    "billing_ids",
    "audit",
    "audit_time",
    "audit_meta",
)
_VOLATILE_DBS = ("buckets", "slots", "meta")
_BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


def _boot_id() -> str:
    try:
        return Path(_BOOT_ID_PATH).read_text(encoding="ascii").strip()
    except OSError:  # pragma: no cover - every Linux has it
        return "unknown"


class LMDBStores:
    """
    Every LMDB store of one folder, sharing its environments.

    Use `open`, not the constructor. Close it with `close` or a ``with``
    block; the stores it handed out stop working then.

    .. versionadded:: 0.1.0
    """

    _registry: ClassVar[dict[tuple[int, int], LMDBStores]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        path: Path,
        *,
        map_size: int,
        max_map_size: int,
    ) -> None:
        self.path = path
        self._refs = 1
        self._key = (0, 0)
        self.durable = Environment(
            str(path),
            _DURABLE_DBS,
            durable=True,
            map_size=map_size,
            max_map_size=max_map_size,
        )
        try:
            self._check_schema()
            self.volatile = self._open_volatile(map_size, max_map_size)
        except BaseException:
            self.durable.close()
            raise
        self.tenants = LMDBTenantStore(self.durable)
        self.limits = LMDBLimiterStore(self.volatile)
        self.replay = LMDBReplayCache(self.durable)
        self.billing = LMDBBillingStore(self.durable)
        self.audit = LMDBAuditStore(self.durable)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        max_map_size: int = DEFAULT_MAX_MAP_SIZE,
    ) -> LMDBStores:
        """
        Open (creating if needed) the store folder *path*.

        Args:
            path: a folder; created with mode 0700 if missing.
            map_size: initial size of the memory map in bytes; it doubles
                whenever it is full.
            max_map_size: the map never grows past this; writes then raise
                `zerfoo_cloud.errors.StoreFullError`.

        Returns:
            The store set. Opening a folder that this process already has
            open returns the same object (its close is reference counted).

        Raises:
            StoreError: the folder cannot be created or opened.
            SchemaMismatchError: it was written by an incompatible version.
        """
        folder = Path(path)
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = folder.stat()
        except OSError as exc:
            msg = f"cannot create the store folder {str(folder)!r}: {exc}"
            raise StoreError(msg) from exc
        key = (st.st_dev, st.st_ino)
        with cls._registry_lock:
            existing = cls._registry.get(key)
            if existing is not None and existing._refs > 0:  # noqa: SLF001
                existing._refs += 1  # noqa: SLF001
                return existing
            stores = cls(folder, map_size=map_size, max_map_size=max_map_size)
            stores._key = key
            cls._registry[key] = stores
            return stores

    def _check_schema(self) -> None:
        meta = self.durable.dbs["meta"]

        def check(txn: Any) -> int | None:
            raw = txn.get(b"schema_version", db=meta)
            if raw is None:
                txn.put(b"schema_version", str(SCHEMA_VERSION).encode(), db=meta)
                return None
            try:
                return int(raw)
            except ValueError:
                return -1

        found = self.durable.write(check)
        if found is not None and found != SCHEMA_VERSION:
            raise SchemaMismatchError(str(self.path), found, SCHEMA_VERSION)

    def _open_volatile(self, map_size: int, max_map_size: int) -> Environment:
        folder = self.path / "limits"
        lock_path = self.path / "limits.lock"
        boot = _boot_id()
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            marker = self.path / "limits.boot"
            try:
                recorded = marker.read_text(encoding="ascii").strip()
            except OSError:
                recorded = ""
            if recorded != boot:
                # The machine restarted since the limiter state was written:
                # it may be torn (it is never fsynced), and it is stale anyway.
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(mode=0o700)
                marker.write_text(boot + "\n", encoding="ascii")
                marker.chmod(0o600)
            folder.mkdir(mode=0o700, exist_ok=True)
            return Environment(
                str(folder),
                _VOLATILE_DBS,
                durable=False,
                map_size=map_size,
                max_map_size=max_map_size,
                writemap=True,
            )
        finally:
            os.close(fd)

    def close(self) -> None:
        """
        Release this reference; the last one closes the environments.
        """
        with self._registry_lock:
            if self._refs <= 0:
                return
            self._refs -= 1
            if self._refs:
                return
            if self._registry.get(self._key) is self:
                del self._registry[self._key]
        self.volatile.close()
        self.durable.close()

    @property
    def closed(self) -> bool:
        """
        Whether every reference was closed.
        """
        return self._refs <= 0

    def __enter__(self) -> LMDBStores:  # noqa: PYI034
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LMDBStores({str(self.path)!r})"


def _forget_after_fork() -> None:  # pragma: no cover - runs in forked children
    # The parent's registry entries refer to environments the child must
    # reopen; the objects stay valid, so the mapping may stay too.
    with contextlib.suppress(RuntimeError):
        LMDBStores._registry_lock = threading.Lock()  # noqa: SLF001


os.register_at_fork(after_in_child=_forget_after_fork)
