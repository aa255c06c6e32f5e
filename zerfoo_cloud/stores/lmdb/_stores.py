"""
`LMDBStores`: the store set of one folder, its environments and its writer
process.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerfoo_cloud._closing import ClosedOnExit
from zerfoo_cloud.errors import SchemaMismatchError
from zerfoo_cloud.stores.lmdb._audit import LMDBAuditStore
from zerfoo_cloud.stores.lmdb._billing import LMDBBillingStore
from zerfoo_cloud.stores.lmdb._channel import WriterProcess
from zerfoo_cloud.stores.lmdb._env import (
    DEFAULT_MAP_SIZE,
    DEFAULT_MAX_MAP_SIZE,
    Environment,
)
from zerfoo_cloud.stores.lmdb._folders import FolderRegistry
from zerfoo_cloud.stores.lmdb._limits import LMDBLimiterStore
from zerfoo_cloud.stores.lmdb._prices import LMDBPriceStore
from zerfoo_cloud.stores.lmdb._replay import LMDBReplayCache
from zerfoo_cloud.stores.lmdb._tenants import LMDBTenantStore

if TYPE_CHECKING:
    pass

__all__ = ["SCHEMA_VERSION", "LMDBStores"]

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
    "prices",
)
_VOLATILE_DBS = ("buckets", "slots", "meta")
_BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


def _boot_id() -> str:
    try:
        return Path(_BOOT_ID_PATH).read_text(encoding="ascii").strip()
    except OSError:  # pragma: no cover - every Linux has it
        return "unknown"


class LMDBStores(ClosedOnExit):
    """
    Every LMDB store of one folder, sharing its environments.

    Use `open`, not the constructor. Close it with `close` or a ``with``
    block; the stores it handed out stop working then.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        path: Path,
        *,
        map_size: int,
        max_map_size: int,
    ) -> None:
        self.path = path
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
        self.prices = LMDBPriceStore(self.durable)

    @property
    def writer_process(self) -> WriterProcess | None:
        """
        The writer process that commits the batches of the billing and
        audit stores' meters and loggers, or ``None`` (they commit from
        their own writer threads).
        """
        return self.billing.writer_process

    def _use_writer_process(self) -> None:
        if self.billing.writer_process is None:
            process = WriterProcess(self.durable)
            self.billing.writer_process = process
            self.audit.writer_process = process

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        max_map_size: int = DEFAULT_MAX_MAP_SIZE,
        writer_process: bool = False,
    ) -> LMDBStores:
        """
        Open (creating if needed) the store folder *path*.

        Args:
            path: a folder; created with mode 0700 if missing.
            map_size: initial size of the memory map in bytes; it doubles
                whenever it is full.
            max_map_size: the map never grows past this; writes then raise
                `zerfoo_cloud.errors.StoreFullError`.
            writer_process: commit the batches of every
                `zerfoo_cloud.metering.TokenMeter` and
                `zerfoo_cloud.audit.AuditLogger` over these billing and
                audit stores from one child process, in one transaction
                when they wait together (`zerfoo-cloud serve` does): the
                commits (the LMDB work, the fsync) then never compete with
                the threads serving requests for the GIL, which under load
                saves them tens of microseconds per request. It costs one
                process (about 25 MB), started at the first commit (about
                0.2 s, in a writer thread), and their writers linger 0.05 s
                by default instead of 0.005 s. Their guarantees hold; a
                process that dies is replaced and its batch sent again
                (request ids and batch numbers keep anything from being
                stored twice); reads stay in this process; closing a meter
                or logger stops the process, and the next commit starts a
                new one. See ``docs/performance.md``.

        Returns:
            The store set. Opening a folder that this process already has
            open returns the same object (its close is reference counted);
            with *writer_process*, it gets the writer process too.

        Raises:
            StoreError: the folder cannot be created or opened.
            SchemaMismatchError: it was written by an incompatible version.
        """
        stores = _OPEN.open(
            path,
            lambda folder: cls(folder, map_size=map_size, max_map_size=max_map_size),
        )
        if writer_process:
            with _OPEN.lock:
                stores._use_writer_process()  # noqa: SLF001 - its own class
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
        if not _OPEN.release(self):
            return
        self.volatile.close()
        self.durable.close()

    @property
    def closed(self) -> bool:
        """
        Whether every reference was closed.
        """
        return not _OPEN.holds(self)

    def __repr__(self) -> str:
        return f"LMDBStores({str(self.path)!r})"


#: The store sets open in this process, one per folder.
_OPEN: FolderRegistry[LMDBStores] = FolderRegistry("store")
