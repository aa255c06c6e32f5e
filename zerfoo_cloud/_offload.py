"""
Commit billing records and audit entries from a writer process.

A writer thread that commits into LMDB does all of that work (the rows, the
hash chain, the LMDB calls, the fsync) in the serving process, and competes
with the threads serving requests for the GIL: under load that costs them
tens of microseconds per request. With ``offload=True`` a `TokenMeter` or
`AuditLogger` hands each batch to a child process instead: the writer
thread pickles the batch as plain tuples (`TokenMeter.record_request` and
`AuditLogger.log_request` queue tuples already), writes it to the child's
stdin in one frame and blocks (the GIL released) until the child answers.
The child (`zerfoo_cloud.stores._lmdb_writer_process`, part of the LMDB
backend) makes the records and commits them through the real LMDB store
classes, so the stored format, the checks, the dedup by request id and the
hash chain stay in one place. This module, the parent's side, imports no
store class and no core service, so the meter and the logger import it.

The protocol: length-prefixed pickled frames over the child's stdin and
stdout. The first frame configures the child (its role, the store folder,
the options it was opened with and, for audit, the chain secret); each later
frame is ``(batch_number, items)``. Every frame gets one answer: ``None``
(done) or ``(full, message, durable)`` (the store failed; *durable* items
from the front of the batch were kept). Only this parent and its own child
write to these pipes.

A child that dies makes the commit raise `StoreError`; the `BatchWriter`
keeps the batch and retries, which starts a new child. Billing records are
stored once per request id, so sending a batch again is harmless; audit
batches carry the writer's random id and a batch number, and the LMDB audit
store skips a batch it committed already (see
`zerfoo_cloud.stores.lmdb.LMDBAuditStore.append_linked`).

The child ignores SIGINT and SIGTERM (they are sent to the whole process
group, while the parent still flushes) and ends when its stdin closes: when
the parent closes the meter or logger, exits, or is killed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import operator
import os
import pickle
import struct
import subprocess
import sys
import sysconfig
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerfoo_cloud.errors import InvalidConfigError, StoreError, StoreFullError
from zerfoo_cloud.stores._lmdb_env import Environment
from zerfoo_cloud.stores.protocols import AuditStore, BillingStore

if TYPE_CHECKING:
    from collections.abc import Callable

    from zerfoo_cloud.stores._lmdb_env import Environment

__all__ = ["AuditCommit", "BillingCommit", "OffloadCommit", "share_writer_process"]

_LENGTH = struct.Struct(">I")
_PROTOCOL = 5
#: Seconds a closing channel waits for its child before killing it.
_CLOSE_TIMEOUT = 10.0
#: Seconds to wait for the exit status of a child whose pipe broke.
_DEATH_TIMEOUT = 5.0
#: The package's parent folder, put first on the child's PYTHONPATH.
_ROOT = str(Path(__file__).resolve().parent.parent)
_SITE_PACKAGES = {
    str(Path(sysconfig.get_paths()[name]).resolve()) for name in ("purelib", "platlib")
}

_BILLING_FIELDS = operator.attrgetter(
    "tenant_id", "input_tokens", "output_tokens", "timestamp", "model", "request_id"
)
# In `AuditEntry`'s positional order; the enums as their values (plain str),
# which pickle without a Python-level call.
_AUDIT_FIELDS = operator.attrgetter(
    "timestamp",
    "tenant_id",
    "action._value_",
    "result._value_",
    "resource",
    "status_code",
    "method",
    "path",
    "remote_addr",
)

# -- frames ----------------------------------------------------------------------


def _write_frame(fd: int, message: object) -> None:
    data = pickle.dumps(message, _PROTOCOL)
    view = memoryview(_LENGTH.pack(len(data)) + data)
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


def _read_frame(fd: int) -> Any:
    (size,) = _LENGTH.unpack(_read_exact(fd, _LENGTH.size))
    return pickle.loads(_read_exact(fd, size))  # noqa: S301 - our own child's pipe


def _copy_error(error: StoreError) -> StoreError:
    # One exception object per waiter: raised in several places at once,
    # a shared one would garble its traceback.
    return type(error)(str(error))


def _reap(proc: subprocess.Popen[bytes]) -> None:
    # Off the event loop: a child whose pipe broke is waited for here.
    try:
        proc.wait(_DEATH_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class _Exchange:
    """
    One frame an event loop sent to the child; the loop reads its answer
    when it comes (`asyncio.AbstractEventLoop.add_reader`), no thread taking
    part. Several may be under way on one channel: the child answers in order.
    """

    def __init__(
        self, channel: _Channel, done: Callable[[Any, StoreError | None], None]
    ) -> None:
        self._channel = channel
        self.done = done
        self.over = False
        self.thread = threading.get_ident()

    def finish_blocking(self) -> None:
        """
        Read the answers still to come in this thread (the loop's, which is
        about to block, or any once the loop stopped): the loop cannot read
        them then.
        """
        self._channel._finish_blocking()  # noqa: SLF001

    @property
    def stalled(self) -> bool:
        """
        Whether only the calling thread can read the answer: it runs the
        loop that sent the frame, or that loop is not running any more.
        """
        if self.over:
            return False
        loop = self._channel._loop  # noqa: SLF001
        return (
            self.thread == threading.get_ident()
            or loop is None
            or not loop.is_running()
        )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# -- the parent's side -------------------------------------------------------------


def _lmdb_env(store: object, kind: str) -> Environment:
    # An LMDB store of the kind: the protocol, and an LMDB environment.
    protocol = BillingStore if kind == "billing" else AuditStore
    env = getattr(store, "_env", None)
    if not isinstance(store, protocol) or not isinstance(env, Environment):
        msg = (
            f"offload=True needs an LMDB {kind} store (from LMDBStores), "
            f"not {type(store).__name__}"
        )
        raise InvalidConfigError(msg, field="offload")
    return env


class _Channel:
    """
    One writer child process and the pipes to it, started on first use.

    Calls come from one `BatchWriter` (its thread, or its caller under its
    lock); the lock only guards against `close` racing a call.
    """

    def __init__(
        self, role: str, env: Environment, secret: bytes | None = None
    ) -> None:
        self._role = role
        self._env = env
        self._secret = secret  # never shown
        self._proc: subprocess.Popen[bytes] | None = None
        self._to_child = -1
        self._from_child = -1
        self._lock = threading.Lock()
        # Frames an event loop sent and the answers it reads (`start`).
        self._inflight: collections.deque[_Exchange] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buffer = bytearray()
        self._outgoing = bytearray()

    def __repr__(self) -> str:
        return f"<offload channel {self._role} pid={self.pid}>"

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return None if proc is None else proc.pid

    def _start(self) -> None:
        environ = dict(os.environ)
        if _ROOT not in _SITE_PACKAGES:
            # A checkout: let the child import it. (Installed, the child
            # finds it anyway, and site-packages must not go before the
            # standard library.)
            path = environ.get("PYTHONPATH")
            environ["PYTHONPATH"] = _ROOT + (os.pathsep + path if path else "")
        child_in, to_child = os.pipe()
        from_child, child_out = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "zerfoo_cloud.stores._lmdb_writer_process"],
                stdin=child_in,
                stdout=child_out,
                env=environ,
            )
        except OSError as exc:
            for fd in (to_child, from_child):
                os.close(fd)
            msg = f"cannot start the {self._role} writer process: {exc}"
            raise StoreError(msg) from exc
        finally:
            os.close(child_in)
            os.close(child_out)
        self._proc = proc
        self._to_child = to_child
        self._from_child = from_child
        # The store as this process has it now (a raised size limit too).
        env = self._env
        reply = self._exchange(
            (
                self._role,
                env.path,
                env.initial_map_size,
                env.max_map_size,
                self._secret,
            )
        )
        if reply is not None:
            self._stop(_CLOSE_TIMEOUT)
            raise (StoreFullError if reply[0] else StoreError)(reply[1])

    def call(self, message: object) -> Any:
        """
        Send *message*, return the answer; start the child first if needed.

        Raises:
            StoreError: the child could not be started, could not open the
                store, or died (it is reaped; the next call starts a new one).
        """
        with self._lock:
            if self._proc is None:
                self._start()
            return self._exchange(message)

    def start(
        self,
        message: object,
        loop: asyncio.AbstractEventLoop,
        done: Callable[[Any, StoreError | None], None],
    ) -> _Exchange | None:
        """
        Send *message* from the event loop *loop*; the loop reads the answer
        when it comes and calls ``done(answer, None)``, or ``done(None,
        error)`` if the child died. Frames sent while others are under way
        follow them at once (the child may commit them together). Returns
        ``None``, having sent nothing, when a `call` is under way, another
        loop has frames under way, or no child runs: starting one blocks,
        so that is left to `call`.
        """
        inflight = self._inflight
        if inflight:
            if loop is not self._loop:
                return None
        else:
            if not self._lock.acquire(blocking=False):
                return None
            if self._proc is None:
                self._lock.release()
                return None
            self._loop = loop
            self._buffer.clear()
            loop.add_reader(self._from_child, self._readable)
        exchange = _Exchange(self, done)
        inflight.append(exchange)
        data = pickle.dumps(message, _PROTOCOL)
        outgoing = self._outgoing
        if not outgoing:
            # The frames of this step of the loop go out in one write: the
            # child reads them together and commits them in one transaction.
            loop.call_soon(self._send)
        outgoing += _LENGTH.pack(len(data))
        outgoing += data
        return exchange

    def _send(self) -> None:
        data = bytes(self._outgoing)
        self._outgoing.clear()
        if not data or self._to_child < 0:
            return
        try:
            _write_all(self._to_child, data)
        except OSError:
            self._fail_all()

    def _readable(self) -> None:
        try:
            more = os.read(self._from_child, 65536)
        except BlockingIOError:  # pragma: no cover - woken without data
            return
        except OSError:
            more = b""
        self._take(more)

    def _take(self, more: bytes) -> None:
        # The loop's side of `_read_frame`: answers in order, each to the
        # oldest exchange under way.
        if not more:
            self._fail_all()
            return
        buffer = self._buffer
        buffer += more
        answered: list[tuple[_Exchange, Any]] = []
        while len(buffer) >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(buffer)
            end = _LENGTH.size + size
            if len(buffer) < end:
                break
            try:
                reply = pickle.loads(buffer[_LENGTH.size : end])  # noqa: S301 - our own child's pipe
            except pickle.UnpicklingError:
                self._fail_all(answered)
                return
            del buffer[:end]
            exchange = self._inflight.popleft()
            exchange.over = True
            answered.append((exchange, reply))
        if not self._inflight:
            self._release()
        for exchange, reply in answered:
            exchange.done(reply, None)

    def _release(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.remove_reader(self._from_child)
        self._lock.release()

    def _fail_all(self, answered: list[tuple[_Exchange, Any]] | None = None) -> None:
        # The child died (or garbled its answer): every exchange under way
        # fails; the next `call` starts a new child.
        failed = list(self._inflight)
        self._inflight.clear()
        self._outgoing.clear()
        for exchange in failed:
            exchange.over = True
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.remove_reader(self._from_child)
        error = self._broke()
        self._lock.release()
        for exchange, reply in answered or ():
            exchange.done(reply, None)
        for exchange in failed:
            exchange.done(None, _copy_error(error))

    def _finish_blocking(self) -> None:
        self._send()
        while self._inflight:
            try:
                more = os.read(self._from_child, 65536)
            except OSError:
                more = b""
            self._take(more)

    def _broke(self) -> StoreError:
        # The loop's `_died`: the dead child is reaped by a thread.
        proc = self._detach()
        pid = "?" if proc is None else proc.pid
        if proc is not None:
            threading.Thread(target=_reap, args=(proc,), daemon=True).start()
        return StoreError(
            f"the {self._role} writer process (pid {pid}) died; a new one takes over"
        )

    def _exchange(self, message: object) -> Any:
        try:
            _write_frame(self._to_child, message)
            return _read_frame(self._from_child)
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            raise self._died() from exc

    def _died(self) -> StoreError:
        proc = self._detach()
        assert proc is not None
        try:
            status = proc.wait(_DEATH_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            status = proc.wait()
        how = (
            f"was killed by signal {-status}"
            if status < 0
            else f"exited with status {status}"
        )
        return StoreError(
            f"the {self._role} writer process (pid {proc.pid}) {how}; "
            "a new one takes over"
        )

    def _detach(self) -> subprocess.Popen[bytes] | None:
        proc, self._proc = self._proc, None
        for fd in (self._to_child, self._from_child):
            if fd >= 0:
                os.close(fd)
        self._to_child = self._from_child = -1
        return proc

    def close(self, timeout: float = _CLOSE_TIMEOUT) -> None:
        """
        Close the pipes and wait for the child to finish (then kill it).
        """
        with self._lock:
            self._stop(timeout)

    def _stop(self, timeout: float) -> None:
        proc = self._detach()
        if proc is None:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _forked(self) -> None:  # pragma: no cover - runs in forked children
        # The parent's child and pipes are the parent's: close the inherited
        # descriptors (the parent's child still has its writer) and start a
        # new child on first use.
        for fd in (self._to_child, self._from_child):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._to_child = self._from_child = -1
        if self._proc is not None:
            # Kept, never waited for: not ours to reap, and dropped it would
            # be polled by its pid, which may come to name a child of ours.
            _INHERITED.append(self._proc)
        self._proc = None
        self._lock = threading.Lock()
        self._inflight = collections.deque()
        self._loop = None
        self._buffer = bytearray()
        self._outgoing = bytearray()


#: The parent's writer processes, as a forked child inherited them.
_INHERITED: list[subprocess.Popen[bytes]] = []


def _answer(reply: Any, batch: list[Any]) -> None:
    # None: done. Else the store failed: drop what it kept, raise the rest.
    if reply is None:
        return
    full, message, durable = reply
    del batch[:durable]
    raise (StoreFullError if full else StoreError)(message)


class OffloadCommit:
    """
    A `BatchWriter` commit through a writer process: what the meter and the
    logger hold to report and stop that process.
    """

    channel: _Channel

    @property
    def pid(self) -> int | None:
        """
        The writer process's pid, ``None`` while none runs.
        """
        return self.channel.pid

    def close(self, timeout: float | None = None) -> None:
        """
        Stop the writer process; the next commit starts a new one.
        """
        self.channel.close(_CLOSE_TIMEOUT if timeout is None else timeout)

    def start_in_loop(
        self,
        batch: list[Any],
        loop: asyncio.AbstractEventLoop,
        done: Callable[[StoreError | None], None],
    ) -> _Exchange | None:
        """
        Commit *batch* as a call would, driven by the event loop *loop*: the
        frame is written now and the loop reads the answer, then calls
        ``done(None)``, or ``done(error)`` with what is left of *batch* kept
        (as a call raising *error* would leave it). Returns ``None``, having
        done nothing, when only a call can do it now (no writer process
        yet, or one call under way).
        """
        raise NotImplementedError

    def _forked(self) -> None:  # pragma: no cover - runs in forked children
        self.channel._forked()  # noqa: SLF001


class BillingCommit(OffloadCommit):
    """
    Store billing records in an `LMDBBillingStore` through a writer process.

    Raises:
        InvalidConfigError: the store is not an LMDB billing store.
    """

    def __init__(self, store: object) -> None:
        self.channel = _Channel("billing", _lmdb_env(store, "billing"))
        _COMMITS.add(self)

    def __call__(self, batch: list[Any]) -> None:
        # Records, or already their fields (`TokenMeter.record_request`).
        items = [
            item if type(item) is tuple else _BILLING_FIELDS(item) for item in batch
        ]
        _answer(self.channel.call((0, items)), batch)

    def start_in_loop(
        self,
        batch: list[Any],
        loop: asyncio.AbstractEventLoop,
        done: Callable[[StoreError | None], None],
    ) -> _Exchange | None:
        """
        `OffloadCommit.start_in_loop` for billing records.
        """
        items = [
            item if type(item) is tuple else _BILLING_FIELDS(item) for item in batch
        ]

        def answered(reply: Any, error: StoreError | None) -> None:
            if error is None:
                try:
                    _answer(reply, batch)
                except StoreError as exc:
                    error = exc
            done(error)

        return self.channel.start((0, items), loop, answered)


class AuditCommit(OffloadCommit):
    """
    Append audit entries to an `LMDBAuditStore`, chained with *secret*,
    through a writer process.

    Batches are numbered; a batch whose fate is unknown (the child died
    before answering) is sent again with its number, ahead of anything new,
    and the store skips it if it was committed. A failed batch is retried
    from the front of the writer's queue, so its entries are the first of
    the next call.

    Raises:
        InvalidConfigError: the store is not an LMDB audit store.
    """

    def __init__(self, store: object, secret: bytes | None) -> None:
        self.channel = _Channel("audit", _lmdb_env(store, "audit"), secret)
        self._writer_id = os.urandom(16)
        self._number = 0
        self._unsure: tuple[int, int] | None = None
        _COMMITS.add(self)

    def __call__(self, batch: list[Any]) -> None:
        unsure = self._unsure
        if unsure is not None:
            self._send(unsure[0], batch, unsure[1])
            if not batch:
                return
        self._number += 1
        self._send(self._number, batch, len(batch))

    def _send(self, number: int, batch: list[Any], count: int) -> None:
        part = batch if count == len(batch) else batch[:count]
        try:
            reply = self.channel.call(
                (
                    number,
                    # Entries, or already their fields (`log_request`).
                    [
                        item if type(item) is tuple else _AUDIT_FIELDS(item)
                        for item in part
                    ],
                    self._writer_id,
                )
            )
        except StoreError:
            self._unsure = (number, count)
            raise
        self._unsure = None
        _answer(reply, batch)
        del batch[:count]

    def start_in_loop(
        self,
        batch: list[Any],
        loop: asyncio.AbstractEventLoop,
        done: Callable[[StoreError | None], None],
    ) -> _Exchange | None:
        """
        `OffloadCommit.start_in_loop` for audit entries; a batch of unknown
        fate is left to a call, which sends it again first.
        """
        if self._unsure is not None:
            return None
        number = self._number = self._number + 1
        count = len(batch)
        items = [item if type(item) is tuple else _AUDIT_FIELDS(item) for item in batch]

        def answered(reply: Any, error: StoreError | None) -> None:
            if error is not None:
                self._unsure = (number, count)
                done(error)
                return
            self._unsure = None
            try:
                _answer(reply, batch)
            except StoreError as exc:
                done(exc)
                return
            del batch[:count]
            done(None)

        exchange = self.channel.start((number, items, self._writer_id), loop, answered)
        if exchange is None:
            self._number = number - 1
        return exchange

    def _forked(self) -> None:  # pragma: no cover - runs in forked children
        # A new writer: the parent's numbers are the parent's.
        super()._forked()
        self._writer_id = os.urandom(16)
        self._number = 0
        self._unsure = None


_COMMITS: weakref.WeakSet[OffloadCommit] = weakref.WeakSet()


def share_writer_process(meter: object, logger: object) -> bool:
    """
    Let a `TokenMeter` and an `AuditLogger` that write to the same LMDB
    store through writer processes (``offload=True``) share the logger's
    process; return whether they do now.

    Their batches keep their own queues, retries and answers, but an event
    loop that waits for both sends both frames at once, and the process
    commits them in one transaction: one fsync and one wake-up of the
    process per batch of requests instead of two, and one process fewer.
    The meter's own process must not have started yet.
    """
    billing = getattr(meter, "_offload", None)
    audit = getattr(logger, "_offload", None)
    if not isinstance(billing, BillingCommit) or not isinstance(audit, AuditCommit):
        return False
    own, shared = billing.channel, audit.channel
    if own is shared:
        return True
    if own._env is not shared._env or own.pid is not None:  # noqa: SLF001
        return False
    billing.channel = shared
    return True


def _after_fork_in_child() -> None:  # pragma: no cover - runs in forked children
    for commit in list(_COMMITS):
        commit._forked()  # noqa: SLF001


os.register_at_fork(after_in_child=_after_fork_in_child)
