"""
The LMDB writer process: the child side of
`zerfoo_cloud.stores.lmdb._channel.WriterProcess`.

Run as ``python -m zerfoo_cloud.stores.lmdb._writer_process`` by its
parent, it opens the LMDB stores named in its first frame and
commits each frame of billing records or audit entries that follows, many
frames in one transaction when they wait together, answering each.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
from typing import TYPE_CHECKING, Any

from zerfoo_cloud._clock import utc_stamp
from zerfoo_cloud.audit_records.chain import _Linker
from zerfoo_cloud.audit_records.entry import make_entry
from zerfoo_cloud.billing_records import BillingRecord
from zerfoo_cloud.errors import StoreError, StoreFullError
from zerfoo_cloud.stores.lmdb import _frames as wire
from zerfoo_cloud.stores.lmdb._stores import LMDBStores

if TYPE_CHECKING:
    from collections.abc import Callable

    from zerfoo_cloud.stores.lmdb._env import Environment

__all__ = ["main"]


def _failure(exc: Exception) -> tuple[bool, str, int]:
    message = (
        str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
    )
    return (isinstance(exc, StoreFullError), message, 0)


#: The most frames the child commits in one transaction.
_MERGE = 16

#: What the child does with a frame: commit it alone, or give the body of a
#: transaction that commits it (with the other frames read together).
_Writer = tuple["Callable[[Any], object]", "Callable[[Any], Callable[[Any], object]]"]


def _billing_writer(store: Any) -> _Writer:
    def records(frame: Any) -> list[BillingRecord]:
        _, items = frame
        return [
            BillingRecord(
                tenant, prompt, completion, utc_stamp(stamp), model, rid, *money
            )
            for tenant, prompt, completion, stamp, model, rid, *money in items
        ]

    def write(frame: Any) -> object:
        return store.add(records(frame))

    def body(frame: Any) -> Callable[[Any], object]:
        add: Callable[[Any], object] = store.add_write(records(frame))
        return add

    return write, body


def _audit_writer(store: Any) -> _Writer:
    # One linker per chain secret (each logger's frames carry its own).
    linkers: dict[bytes | None, _Linker] = {}

    def linker(secret: bytes | None) -> _Linker:
        found = linkers.get(secret)
        if found is None:
            found = linkers[secret] = _Linker(secret)
        return found

    def entries(frame: Any) -> list[Any]:
        return [make_entry(utc_stamp(item[0]), *item[1:]) for item in frame[1]]

    def write(frame: Any) -> object:
        number, _, writer_id, secret = frame
        return store.append_linked(
            entries(frame), linker(secret), batch=(writer_id, number)
        )

    def body(frame: Any) -> Callable[[Any], object]:
        number, _, writer_id, secret = frame
        append: Callable[[Any], object] = store.append_write(
            entries(frame), linker(secret), batch=(writer_id, number)
        )
        return append

    return write, body


def _read_more(fd_in: int, frames: list[Any]) -> bool:
    # The frames already waiting in the pipe (sent while the child worked):
    # committed together with the first. False once the parent closed it.
    while len(frames) < _MERGE and select.select([fd_in], [], [], 0)[0]:
        try:
            frames.append(wire.read_frame(fd_in))
        except EOFError:  # noqa: PERF203 - once, at the end
            return False
    return True


def _commit(env: Environment, writers: dict[int, _Writer], frames: list[Any]) -> bytes:
    # One transaction (one fsync) for all the frames; if it fails, each
    # alone, so that each gets its own answer. The answers as one write.
    if len(frames) > 1:
        try:
            bodies = [writers[len(frame)][1](frame) for frame in frames]
            env.write(lambda txn: [body(txn) for body in bodies])
        except Exception:  # noqa: BLE001, S110 - each frame alone says what failed
            pass
        else:
            return _frames([None] * len(frames))
    replies: list[object] = []
    for frame in frames:
        try:
            writers[len(frame)][0](frame)
        except Exception as exc:  # noqa: BLE001, PERF203 - sent to the parent
            replies.append(_failure(exc))
        else:
            replies.append(None)
    return _frames(replies)


def _frames(messages: list[object]) -> bytes:
    out = bytearray()
    for message in messages:
        data = pickle.dumps(message, wire.PROTOCOL)
        out += wire.LENGTH.pack(len(data))
        out += data
    return bytes(out)


def _serve(fd_in: int, fd_out: int) -> None:
    try:
        config = wire.read_frame(fd_in)
    except EOFError:
        return
    path, map_size, max_map_size = config
    try:
        stores = LMDBStores.open(path, map_size=map_size, max_map_size=max_map_size)
    except Exception as exc:  # noqa: BLE001 - sent to the parent
        wire.write_frame(fd_out, _failure(exc))
        return
    try:
        # Billing frames are (0, items), audit ones (number, items, writer,
        # secret): one child serves every meter and logger of the store set.
        writers = {
            2: _billing_writer(stores.billing),
            4: _audit_writer(stores.audit),
        }
        wire.write_frame(fd_out, None)
        while True:
            try:
                frames = [wire.read_frame(fd_in)]
            except EOFError:
                return
            more = _read_more(fd_in, frames)
            wire.write_all(fd_out, _commit(stores.durable, writers, frames))
            if not more:
                return
    finally:
        stores.close()


def main() -> None:
    """
    Run as the writer process: serve frames from stdin until it closes.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The answers get a descriptor of their own; whatever prints goes to
    # stderr instead of into the protocol.
    fd_out = os.dup(1)
    os.dup2(2, 1)
    with contextlib.suppress(BrokenPipeError):
        _serve(0, fd_out)


if __name__ == "__main__":
    main()
