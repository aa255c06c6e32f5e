"""
The parent's side of an LMDB writer process: `WriterProcess`.

A writer thread that commits into LMDB does all of that work (the rows, the
hash chain, the LMDB calls, the fsync) in the serving process, and competes
with the threads serving requests for the GIL: under load that costs them
tens of microseconds per request. An `LMDBStores` opened with
``writer_process=True`` commits the batches of every `TokenMeter` and
`AuditLogger` over its billing and audit stores from one child process
instead (see `zerfoo_cloud.stores.lmdb._commits`): the writer thread pickles
the batch as plain tuples, writes it to the child's stdin in one frame and
blocks (the GIL released) until the child answers. The child
(`zerfoo_cloud.stores.lmdb._writer_process`) makes the records and commits
them through the real LMDB store classes, so the stored format, the checks,
the dedup by request id and the hash chain stay in one place.

The protocol (`zerfoo_cloud.stores.lmdb._frames`): the first frame
configures the child (the store folder and the options it was opened with);
each later frame is a batch, ``(0, records)`` for billing or ``(number,
entries, writer_id, secret)`` for audit. Every frame gets one answer:
``None`` (done) or ``(full, message, durable)`` (the store failed; *durable*
items from the front of the batch were kept). Frames that wait together are
committed in one transaction: an event loop that waits for a billing record
and an audit entry sends both at once, and pays one fsync.

A child that dies makes the commit raise `StoreError`; the `BatchWriter`
keeps the batch and retries, which starts a new child. The child ignores
SIGINT and SIGTERM (they are sent to the whole process group, while the
parent still flushes) and ends when its stdin closes: when a meter or logger
closes it, or the parent exits or is killed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import pickle
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerfoo_cloud._fork import reset_in_child
from zerfoo_cloud.errors import StoreError, StoreFullError
from zerfoo_cloud.stores.lmdb._frames import (
    LENGTH,
    PROTOCOL,
    read_frame,
    read_some,
    write_all,
    write_frame,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from zerfoo_cloud.stores.lmdb._env import Environment

__all__ = ["CLOSE_TIMEOUT", "Exchange", "WriterProcess", "copy_error"]

#: Seconds a closing channel waits for its child before killing it.
CLOSE_TIMEOUT = 10.0
#: Seconds to wait for the exit status of a child whose pipe broke.
_DEATH_TIMEOUT = 5.0
#: The package's parent folder, put first on the child's PYTHONPATH.
_ROOT = str(Path(__file__).resolve().parents[3])
_SITE_PACKAGES = {
    str(Path(sysconfig.get_paths()[name]).resolve()) for name in ("purelib", "platlib")
}


def copy_error(error: StoreError) -> StoreError:
    """One exception object per waiter, as `WriterProcess` fails them."""
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


class Exchange:
    """
    One frame an event loop sent to the child; the loop reads its answer
    when it comes (`asyncio.AbstractEventLoop.add_reader`), no thread taking
    part. Several may be under way on one channel: the child answers in order.
    """

    def __init__(
        self, channel: WriterProcess, done: Callable[[Any, StoreError | None], None]
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


class WriterProcess:
    """
    The writer child process of one `LMDBStores` and the pipes to it,
    started on first use.

    Calls come from the `BatchWriter` threads of the committers it serves,
    or from an event loop (`start`); the lock keeps one exchange at a time.
    """

    def __init__(self, env: Environment) -> None:
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None
        self._to_child = -1
        self._from_child = -1
        self._lock = threading.Lock()
        # Frames an event loop sent and the answers it reads (`start`).
        self._inflight: collections.deque[Exchange] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buffer = bytearray()
        self._outgoing = bytearray()
        reset_in_child(self)

    def __repr__(self) -> str:
        return f"<LMDB writer process pid={self.pid}>"

    @property
    def pid(self) -> int | None:
        """
        The writer process's pid, ``None`` while none runs.
        """
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
                [sys.executable, "-m", "zerfoo_cloud.stores.lmdb._writer_process"],
                stdin=child_in,
                stdout=child_out,
                env=environ,
            )
        except OSError as exc:
            for fd in (to_child, from_child):
                os.close(fd)
            msg = f"cannot start the LMDB writer process: {exc}"
            raise StoreError(msg) from exc
        finally:
            os.close(child_in)
            os.close(child_out)
        self._proc = proc
        self._to_child = to_child
        self._from_child = from_child
        # The store as this process has it now (a raised size limit too).
        env = self._env
        reply = self._exchange((env.path, env.initial_map_size, env.max_map_size))
        if reply is not None:
            self._stop(CLOSE_TIMEOUT)
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
    ) -> Exchange | None:
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
        exchange = Exchange(self, done)
        inflight.append(exchange)
        data = pickle.dumps(message, PROTOCOL)
        outgoing = self._outgoing
        if not outgoing:
            # The frames of this step of the loop go out in one write: the
            # child reads them together and commits them in one transaction.
            loop.call_soon(self._send)
        outgoing += LENGTH.pack(len(data))
        outgoing += data
        return exchange

    def _send(self) -> None:
        data = bytes(self._outgoing)
        self._outgoing.clear()
        if not data or self._to_child < 0:
            return
        try:
            write_all(self._to_child, data)
        except OSError:
            self._fail_all()

    def _readable(self) -> None:
        try:
            more = os.read(self._from_child, 65536)
        except BlockingIOError:  # pragma: no cover - woken without data
            # (uvloop made the pipe non-blocking: see `_frames`.)
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
        answered: list[tuple[Exchange, Any]] = []
        while len(buffer) >= LENGTH.size:
            (size,) = LENGTH.unpack_from(buffer)
            end = LENGTH.size + size
            if len(buffer) < end:
                break
            try:
                reply = pickle.loads(buffer[LENGTH.size : end])  # noqa: S301 - our own child's pipe
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

    def _fail_all(self, answered: list[tuple[Exchange, Any]] | None = None) -> None:
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
            exchange.done(None, copy_error(error))

    def _finish_blocking(self) -> None:
        self._send()
        while self._inflight:
            try:
                more = read_some(self._from_child, 65536)
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
            f"the LMDB writer process (pid {pid}) died; a new one takes over"
        )

    def _exchange(self, message: object) -> Any:
        try:
            write_frame(self._to_child, message)
            return read_frame(self._from_child)
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
            f"the LMDB writer process (pid {proc.pid}) {how}; a new one takes over"
        )

    def _detach(self) -> subprocess.Popen[bytes] | None:
        proc, self._proc = self._proc, None
        for fd in (self._to_child, self._from_child):
            if fd >= 0:
                os.close(fd)
        self._to_child = self._from_child = -1
        return proc

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
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

#: The parent's writer processes, as a forked child inherited them.
_INHERITED: list[subprocess.Popen[bytes]] = []
