"""
The outbox across processes: a host killed with SIGKILL keeps what its
outbox holds, and the next process drains it, exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.outbox._checks import billed_ids, chain, chain_verifies
from tests.outbox._outbox_child import SECRET
from tests.outbox._primaries import KILL_AFTER_COMMIT, Primary, open_primary
from zerfoo_cloud.stores.outbox import Outbox, OutboxDepth

ROOT = Path(__file__).resolve().parents[2]
CHILD = ["-m", "tests.outbox._outbox_child"]
RECORDS, ENTRIES = 300, 40


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The folder of the primary (``primary``) and the outbox (``outbox``)."""
    return tmp_path


@pytest.fixture
def shared(root: Path) -> Iterator[Primary]:
    """The primary the children use, opened here too to check it."""
    primary = open_primary("lmdb", root / "primary")
    yield primary
    primary.close()


def _fill_and_kill(root: Path, primary: Primary) -> None:
    primary.switch.down()
    child = subprocess.Popen(
        [sys.executable, *CHILD, "fill", str(root), str(RECORDS), str(ENTRIES)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "flushed"
    child.send_signal(signal.SIGKILL)
    assert child.wait(30) == -signal.SIGKILL
    child.stdout.close()
    with Outbox.open(root / "outbox") as box:
        assert box.depth() == OutboxDepth(RECORDS, ENTRIES)
    primary.switch.up()


def _drain(root: Path, kill: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop(KILL_AFTER_COMMIT, None)
    if kill:
        env[KILL_AFTER_COMMIT] = kill
    return subprocess.run(
        [sys.executable, *CHILD, "drain", str(root)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _all_there_once(primary: Primary) -> None:
    ids = billed_ids(primary)
    assert sorted(ids) == sorted(f"r{i}" for i in range(RECORDS))
    entries = chain(primary)
    assert [e.path for e in entries] == [f"/v1/{i}" for i in range(ENTRIES)]
    assert chain_verifies(primary, SECRET)


def test_a_killed_host_drains_its_outbox_when_it_restarts(
    root: Path, shared: Primary
) -> None:
    _fill_and_kill(root, shared)
    assert billed_ids(shared) == []
    done = _drain(root)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"empty": True, "depth": [0, 0]}
    _all_there_once(shared)


def test_a_kill_between_commit_and_delete_sends_again_harmlessly(
    root: Path, shared: Primary
) -> None:
    _fill_and_kill(root, shared)
    # Dies right after the primary committed the billing records...
    assert _drain(root, kill="billing").returncode == -signal.SIGKILL
    assert len(billed_ids(shared)) == RECORDS
    # ... then after it committed the first audit batch (billing again).
    assert _drain(root, kill="audit").returncode == -signal.SIGKILL
    assert len(chain(shared)) == 7
    with Outbox.open(root / "outbox") as box:
        assert box.depth() == OutboxDepth(0, ENTRIES)
    done = _drain(root)
    assert done.returncode == 0, done.stderr
    _all_there_once(shared)


def test_two_processes_drain_one_outbox_once(root: Path, shared: Primary) -> None:
    _fill_and_kill(root, shared)
    children = [
        subprocess.Popen(
            [sys.executable, *CHILD, "drain", str(root)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for child in children:
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0
        assert json.loads(out)["empty"]
    _all_there_once(shared)
