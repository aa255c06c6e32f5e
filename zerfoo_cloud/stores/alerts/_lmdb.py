"""
`LMDBAlertOutbox`: alert deliveries in an LMDB environment of their own,
on the host's disk, shared by the host's processes.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import orjson

from zerfoo_cloud._closing import ClosedOnExit
from zerfoo_cloud._fork import reset_in_child
from zerfoo_cloud.alert_records import Delivery, OutboxCounts, oldest_first
from zerfoo_cloud.errors import CorruptRecordError, StoreFullError
from zerfoo_cloud.stores.lmdb._env import DEFAULT_MAP_SIZE, Environment
from zerfoo_cloud.stores.lmdb._folders import FolderRegistry
from zerfoo_cloud.stores.lmdb._host_lock import HostLock

if TYPE_CHECKING:
    from zerfoo_cloud.alert_records import AlertEvent, Attempt

__all__ = ["DEFAULT_MAX_OUTBOX_BYTES", "LMDBAlertOutbox"]

#: An alert outbox holds at most this many bytes unless told otherwise.
DEFAULT_MAX_OUTBOX_BYTES = 1 << 30
_DBS = ("pending", "dead", "seen", "meta")
_COUNT = struct.Struct(">Q")
_TIME = struct.Struct(">d")
#: Room kept past the limit so that a full outbox can still record
#: attempts and drop what went (a delete writes pages too).
_RESERVE = 1 << 16


def _decode(name: str, key: bytes, raw: bytes) -> Delivery:
    try:
        return Delivery.from_dict(orjson.loads(raw))
    except (ValueError, orjson.JSONDecodeError) as exc:
        store = f"alerts:{name}"
        raise CorruptRecordError(store, key.decode(errors="replace"), str(exc)) from exc


def _encode(delivery: Delivery) -> bytes:
    return orjson.dumps(delivery.to_dict())


class LMDBAlertOutbox(ClosedOnExit):
    """
    An `zerfoo_cloud.stores.alerts.AlertOutbox` in its own LMDB folder.

    Every change is one fsynced transaction: a delivery queued survives a
    ``SIGKILL``, a restart or a power loss, with its attempts. Processes
    of one host may share the folder: adding is atomic (one of them queues
    an event id), and a lock file (``send.lock``, released by the kernel
    when its holder dies) lets one of them send at a time (`sending`).

    **Full.** `add` past *max_bytes* raises
    `zerfoo_cloud.errors.StoreFullError` and queues nothing; recording
    attempts and dropping what went still works (room is kept for it).

    Open it with `open`; the folder holds only the outbox (never open
    other stores there).

    .. versionadded:: 0.1.0
    """

    def __init__(self, path: Path, *, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._env = Environment(
            str(path),
            _DBS,
            durable=True,
            map_size=min(DEFAULT_MAP_SIZE, max_bytes + _RESERVE),
            max_map_size=max_bytes + _RESERVE,
        )
        self._dbs = self._env.dbs
        self._page = int(
            self._env.read(lambda txn: txn.stat(self._dbs["meta"])["psize"])
        )
        self._send_lock = HostLock(path / "send.lock")
        reset_in_child(self)

    def _forked(self) -> None:  # pragma: no cover - runs in forked children
        self._send_lock.forked()

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_OUTBOX_BYTES
    ) -> LMDBAlertOutbox:
        """
        Open (creating if needed, mode 0700) the alert outbox folder *path*.

        Args:
            path: a folder of its own on a local disk.
            max_bytes: the deliveries waiting never take more than this;
                `add` past it raises `zerfoo_cloud.errors.StoreFullError`.

        Returns:
            The outbox; opening a folder this process has open returns the
            same object (its `close` is reference counted).

        Raises:
            StoreError: the folder cannot be created or opened.
        """
        return _OPEN.open(path, lambda folder: cls(folder, max_bytes=max_bytes))

    def add(self, event: AlertEvent, urls: Sequence[str], now: float) -> bool:
        """
        See `AlertOutbox.add`.
        """
        rows = [
            (d.key.encode(), _encode(d))
            for d in (Delivery(event, u, now, now) for u in dict.fromkeys(urls))
        ]
        need = (sum(len(raw) for _, raw in rows) // self._page + 4) * self._page

        def write(txn: Any) -> bool:
            dbs = self._dbs
            if txn.get(event.id.encode(), db=dbs["seen"]) is not None:
                return False
            used = self._page * sum(_pages(txn.stat(dbs[name])) for name in _DBS)
            if used + need > self.max_bytes:
                msg = (
                    f"the alert outbox at {str(self.path)!r} is full ({used} bytes "
                    f"used, its limit is {self.max_bytes}); bring the webhook "
                    "endpoints back or raise the limit: nothing was queued"
                )
                raise StoreFullError(msg)
            txn.put(event.id.encode(), _TIME.pack(now), db=dbs["seen"])
            for key, raw in rows:
                txn.put(key, raw, db=dbs["pending"])
            return True

        return self._env.write(write)

    def _all(self, name: str) -> list[Delivery]:
        def read(txn: Any) -> list[Delivery]:
            return [_decode(name, k, v) for k, v in txn.cursor(db=self._dbs[name])]

        return oldest_first(self._env.read(read))

    def due(self, now: float, limit: int) -> list[Delivery]:
        """
        See `AlertOutbox.due`.
        """
        return [d for d in self._all("pending") if d.next_at <= now][:limit]

    def next_due(self) -> float | None:
        """
        See `AlertOutbox.next_due`.
        """
        return min((d.next_at for d in self._all("pending")), default=None)

    def attempted(
        self, delivery: Delivery, attempt: Attempt, outcome: str, next_at: float
    ) -> None:
        """
        See `AlertOutbox.attempted`.
        """
        key = delivery.key.encode()

        def write(txn: Any) -> None:
            dbs = self._dbs
            raw = txn.pop(key, db=dbs["pending"])
            if raw is None:
                return
            if outcome == "delivered":
                old = txn.get(b"delivered", db=dbs["meta"])
                count = 0 if old is None else _COUNT.unpack(old)[0]
                txn.put(b"delivered", _COUNT.pack(count + 1), db=dbs["meta"])
                return
            current = _decode("pending", key, raw)
            done = attrs.evolve(
                current,
                attempts=(*current.attempts, attempt),
                next_at=next_at,
                dead=outcome == "dead",
            )
            txn.put(key, _encode(done), db=dbs["dead" if done.dead else "pending"])

        self._env.write(write)

    def pending(self) -> list[Delivery]:
        """
        See `AlertOutbox.pending`.
        """
        return self._all("pending")

    def dead_letters(self) -> list[Delivery]:
        """
        See `AlertOutbox.dead_letters`.
        """
        return self._all("dead")

    def retry(self, event_id: str | None, now: float) -> int:
        """
        See `AlertOutbox.retry`.
        """

        def write(txn: Any) -> int:
            dbs = self._dbs
            chosen = [(k, _decode("dead", k, v)) for k, v in txn.cursor(db=dbs["dead"])]
            moved = 0
            for key, delivery in chosen:
                if event_id not in {None, delivery.event.id}:
                    continue
                txn.delete(key, db=dbs["dead"])
                again = attrs.evolve(delivery, dead=False, next_at=now)
                txn.put(key, _encode(again), db=dbs["pending"])
                moved += 1
            return moved

        return self._env.write(write)

    def counts(self) -> OutboxCounts:
        """
        See `AlertOutbox.counts`.
        """

        def read(txn: Any) -> OutboxCounts:
            dbs = self._dbs
            raw = txn.get(b"delivered", db=dbs["meta"])
            return OutboxCounts(
                txn.stat(dbs["pending"])["entries"],
                txn.stat(dbs["dead"])["entries"],
                0 if raw is None else _COUNT.unpack(raw)[0],
            )

        return self._env.read(read)

    def set_endpoints(self, endpoints: Sequence[tuple[str, tuple[str, ...]]]) -> None:
        """
        See `AlertOutbox.set_endpoints`.
        """
        raw = orjson.dumps([[url, list(p)] for url, p in endpoints])
        self._env.write(lambda txn: txn.put(b"endpoints", raw, db=self._dbs["meta"]))

    def endpoints(self) -> list[tuple[str, tuple[str, ...]]]:
        """
        See `AlertOutbox.endpoints`.
        """
        raw = self._env.read(lambda txn: txn.get(b"endpoints", db=self._dbs["meta"]))
        if raw is None:
            return []
        try:
            return [(str(url), tuple(map(str, p))) for url, p in orjson.loads(raw)]
        except (ValueError, TypeError) as exc:
            raise CorruptRecordError("alerts:meta", "endpoints", str(exc)) from exc

    @contextlib.contextmanager
    def sending(self) -> Iterator[bool]:
        """
        See `AlertOutbox.sending`: holds ``send.lock`` in the folder.
        """
        if not self._send_lock.acquire():
            yield False
            return
        try:
            yield True
        finally:
            self._send_lock.release()

    def close(self) -> None:
        """
        Release this reference; the last one closes the environment. What
        waits stays for the next process.
        """
        if not _OPEN.release(self):
            return
        self._send_lock.close()
        self._env.close()

    def __repr__(self) -> str:
        return f"LMDBAlertOutbox({str(self.path)!r})"


def _pages(stat: dict[str, int]) -> int:
    return stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]


#: The alert outboxes open in this process, one per folder.
_OPEN: FolderRegistry[LMDBAlertOutbox] = FolderRegistry("alert outbox")
