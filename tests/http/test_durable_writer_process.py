"""
Durable answers with billing and audit written from the store set's writer
process, as ``zerfoo-cloud serve`` runs: the event loop hands each batch to
the writer process and reads its answer itself, and every answer still ends
only once its records are committed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.http._durable_stack import DurableStack
from tests.http._support import CHAT, KEY, asgi_json_app, chat
from zerfoo_cloud import CloudServer
from zerfoo_cloud.errors import StoreError
from zerfoo_cloud.http._types import Message, Scope
from zerfoo_cloud.stores.lmdb._commits import WriterProcessCommit

#: Requests served at once.
CONCURRENT = 24
#: Requests served at once on uvloop.
UVLOOP_CONCURRENT = 300


class _Offloaded(DurableStack):
    """Tenants on LMDB; billing and audit through the writer process."""

    def __init__(self, folder: Path) -> None:
        super().__init__(
            folder, writer_process=True, rate_limit=10**6, token_budget=10**9
        )
        self.server = CloudServer(
            asgi_json_app(), self.stack.tenants, self.meter, audit=self.audit
        )

    def committed(self) -> tuple[set[str], int]:
        """Request ids billed and audit entries stored, read past the writers."""
        return {r.request_id for r in self.billed()}, self.audited()


@pytest.fixture
def offloaded(tmp_path: Path) -> Iterator[_Offloaded]:
    """The stack, closed after the test."""
    stack = _Offloaded(tmp_path / "db")
    yield stack
    stack.close()


async def _chat(stack: _Offloaded, send: Any) -> None:
    """One chat request through the server, its messages sent to *send*."""

    async def receive() -> Message:
        return {"type": "http.request", "body": json.dumps(chat()).encode()}

    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": CHAT,
        "headers": [(b"authorization", f"Bearer {KEY}".encode())],
    }
    await stack.server.handler()(scope, receive, send)


async def _serve(stack: _Offloaded) -> tuple[str, set[str], int]:
    """One request; its id, and what was committed when its last byte went."""
    seen: dict[str, Any] = {}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            seen["id"] = dict(message["headers"])[b"x-request-id"].decode()
            seen["status"] = message["status"]
        elif not message.get("more_body", False):
            seen["committed"] = stack.committed()

    await _chat(stack, send)
    assert seen["status"] == 200
    billed, audited = seen["committed"]
    return seen["id"], billed, audited


async def _status(stack: _Offloaded) -> int:
    """One request; its status (no reads of the store)."""
    statuses: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await _chat(stack, send)
    return statuses[0]


def _count_thread_calls(commit: object, calls: list[str]) -> None:
    """Note every batch the writer thread sends (a call), not the loop."""
    assert isinstance(commit, WriterProcessCommit)
    channel = commit.channel
    call = channel.call

    def counted(message: object) -> Any:
        calls.append(type(commit).__name__)
        return call(message)

    channel.call = counted  # type: ignore[method-assign]


def _dead(pid: int) -> bool:
    """Whether *pid* has exited (a zombie, or gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return True
    return stat.rsplit(") ", 1)[-1].startswith("Z")


def test_answers_wait_for_commits_the_event_loop_hands_over(
    offloaded: _Offloaded,
) -> None:
    """Concurrent answers each end after their own records are committed,
    and once the writer processes run, no batch goes through a thread."""

    async def run() -> list[tuple[str, set[str], int]]:
        await _serve(offloaded)  # starts the writer processes
        calls: list[str] = []
        _count_thread_calls(offloaded.meter._committer, calls)
        _count_thread_calls(offloaded.audit._committer, calls)
        done = await asyncio.gather(*(_serve(offloaded) for _ in range(CONCURRENT)))
        assert calls == []
        return done

    served = asyncio.run(run())
    for number, (request_id, billed, audited) in enumerate(served):
        assert request_id in billed
        assert audited >= 2 + number // CONCURRENT  # the warm-up's and its own
    billed, audited = offloaded.committed()
    assert len(billed) == CONCURRENT + 1
    assert audited == CONCURRENT + 1


def test_a_loop_that_blocks_on_flush_reads_its_own_answer(
    offloaded: _Offloaded,
) -> None:
    """The loop starts a commit, then blocks in flush(): it must not wait
    for an answer only it could read."""

    async def run() -> None:
        await _serve(offloaded)
        offloaded.meter.record_request("acme", 1, 2, model="m", request_id="r-block")
        futures = offloaded.meter.flush_futures()  # the loop sends the batch
        offloaded.meter.flush(timeout=30)  # blocks the loop
        assert all(f.done() for f in futures)

    asyncio.run(run())
    assert "r-block" in offloaded.committed()[0]


def test_a_writer_process_killed_under_the_loop_loses_and_doubles_nothing(
    offloaded: _Offloaded,
) -> None:
    """A dead writer process fails the loop's commit; the records stay
    queued, and the retry (a new process) stores each once."""
    meter = offloaded.meter

    asyncio.run(_serve(offloaded))
    process = offloaded.stores.writer_process
    assert process is not None
    pid = process.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while not _dead(pid) and time.monotonic() < deadline:
        time.sleep(0.01)

    async def run() -> None:
        meter.record_request("acme", 1, 2, model="m", request_id="r-dead")
        with pytest.raises(StoreError, match="writer process"):
            await meter.aflush()
        assert meter.pending == 1
        await meter.aflush()  # the thread starts a new process and retries
        assert meter.pending == 0

    asyncio.run(run())
    billed = [r.request_id for r in offloaded.billed()]
    assert billed.count("r-dead") == 1


def test_billing_and_audit_of_a_request_share_one_transaction(
    offloaded: _Offloaded,
) -> None:
    """A meter and a logger on one store set share its writer process,
    and a request's billing record and audit entry are committed in one
    transaction (one fsync), not one each."""
    meter, audit = offloaded.meter._committer, offloaded.audit._committer
    assert isinstance(meter, WriterProcessCommit)
    assert isinstance(audit, WriterProcessCommit)
    env = offloaded.stores.durable

    async def run() -> None:
        await _serve(offloaded)  # starts the writer process
        assert meter.pid is not None
        assert meter.pid == audit.pid
        before = env.info()["last_txnid"]
        request_id, billed, audited = await _serve(offloaded)
        assert request_id in billed
        assert audited == 2
        assert env.info()["last_txnid"] == before + 1

    asyncio.run(run())


def test_a_commit_left_by_a_stopped_loop_is_finished_by_another_thread(
    offloaded: _Offloaded,
) -> None:
    """A loop that sent a batch and stopped before reading the answer does
    not leave the writer stuck: a flush from another thread reads it."""
    asyncio.run(_serve(offloaded))

    async def leave() -> None:
        offloaded.meter.record_request("acme", 1, 2, model="m", request_id="r-left")
        offloaded.meter.flush_futures()  # the loop sends the batch, and stops

    asyncio.run(leave())
    errors: list[BaseException] = []

    def flush() -> None:
        try:
            offloaded.meter.flush(timeout=10)
        except BaseException as exc:
            errors.append(exc)

    other = threading.Thread(target=flush)
    other.start()
    other.join(30)
    assert errors == []
    assert offloaded.meter.pending == 0
    assert "r-left" in offloaded.committed()[0]


def test_records_nobody_flushes_are_still_written_after_loop_commits(
    offloaded: _Offloaded,
) -> None:
    """The writer thread leaves queued records to loops that commit, but
    not for ever: a record with no flush after them is written anyway."""
    asyncio.run(_serve(offloaded))  # a loop commit just ended
    offloaded.meter.record_request("acme", 1, 2, model="m", request_id="r-quiet")
    deadline = time.monotonic() + 20
    while offloaded.meter.pending and time.monotonic() < deadline:
        time.sleep(0.01)
    assert offloaded.meter.pending == 0
    assert "r-quiet" in offloaded.committed()[0]


def test_uvloop_keeps_one_writer_process_under_many_concurrent_requests(
    offloaded: _Offloaded,
) -> None:
    """On uvloop, whose add_reader makes the pipe from the writer process
    non-blocking, the writer thread's blocking calls and the loop's reads
    share that pipe: hundreds of concurrent durable requests all succeed,
    each billed and audited once, and the writer process is never restarted."""
    uvloop = pytest.importorskip("uvloop")
    process = offloaded.stores.writer_process
    assert process is not None

    async def run() -> list[int]:
        statuses = [await _status(offloaded)]  # starts the writer process
        pid = process.pid
        assert pid is not None
        for _ in range(3):
            statuses += await asyncio.gather(
                *(_status(offloaded) for _ in range(UVLOOP_CONCURRENT))
            )
            # The writer thread commits too, over the pipe the loop read.
            offloaded.meter.record_request(
                "acme", 1, 2, model="m", request_id=f"r-thread-{len(statuses)}"
            )
            await asyncio.to_thread(offloaded.meter.flush, 30)
            assert process.pid == pid
        return statuses

    loop = uvloop.new_event_loop()
    try:
        statuses = loop.run_until_complete(run())
    finally:
        loop.close()
    assert statuses == [200] * (3 * UVLOOP_CONCURRENT + 1)
    assert offloaded.meter.error is None
    assert offloaded.audit.error is None
    billed, audited = offloaded.committed()
    assert len(billed) == 3 * UVLOOP_CONCURRENT + 1 + 3
    assert audited == 3 * UVLOOP_CONCURRENT + 1
