"""
Random sequences of outages, recoveries, writes and drains: the primary ends
with exactly what was written, billing records once per request id, audit
entries once each, in the order they were appended, in a chain that verifies.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.outbox._checks import billed_ids, chain, chain_verifies
from tests.outbox._primaries import open_primary
from tests.outbox.conftest import PRIMARIES
from zerfoo_cloud.audit import AuditEntry
from zerfoo_cloud.audit_records.chain import _Linker
from zerfoo_cloud.billing_records import BillingRecord
from zerfoo_cloud.errors import StoreUnavailableError
from zerfoo_cloud.stores.outbox import Outbox, OutboxAuditStore, OutboxBillingStore

NOW = datetime(2026, 12, 6, tzinfo=timezone.utc)
KEY = b"q" * 32

STEPS = st.lists(
    st.one_of(
        st.just(("down", 0)),
        st.just(("up", 0)),
        st.tuples(st.just("add"), st.integers(1, 6)),
        st.tuples(st.just("again"), st.integers(0, 50)),
        st.tuples(st.just("log"), st.integers(1, 4)),
        st.just(("drain", 0)),
    ),
    max_size=25,
)


@pytest.mark.parametrize("name", [p.values[0] for p in PRIMARIES])
@settings(max_examples=40)
@given(steps=STEPS)
# Entries appended while others wait go behind them.
@example(steps=[("down", 0), ("log", 2), ("up", 0), ("log", 2), ("add", 1)])
def test_the_primary_ends_with_exactly_what_was_written(
    name: str, steps: list[tuple[str, int]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        primary = open_primary(name, Path(folder) / "primary")
        box = Outbox.open(Path(folder) / "outbox", first_retry=0.05, max_retry=0.2)
        billing = OutboxBillingStore(primary.billing, box, drain_batch=4)
        audit = OutboxAuditStore(primary.audit, box)
        link = _Linker(KEY)
        ids: list[str] = []
        paths: list[str] = []
        try:
            for step, n in steps:
                if step == "down":
                    primary.switch.down()
                elif step == "up":
                    primary.switch.up()
                elif step == "add":
                    new = [f"r{len(ids) + i}" for i in range(n)]
                    ids.extend(new)
                    billing.add([BillingRecord("acme", 1, 1, NOW, "", r) for r in new])
                elif step == "again" and ids:
                    again = ids[n % len(ids)]
                    billing.add([BillingRecord("acme", 1, 1, NOW, "", again)])
                elif step == "log":
                    new = [f"/p/{len(paths) + i}" for i in range(n)]
                    paths.extend(new)
                    audit.append_linked(
                        [AuditEntry(NOW, "acme", path=p) for p in new], link
                    )
                elif step == "drain":
                    try:
                        box.drain_now()
                    except StoreUnavailableError:
                        assert primary.switch.is_down
            primary.switch.up()
            assert box.wait_empty(20)
            stored = billed_ids(primary)
            assert sorted(stored) == sorted(ids)
            assert [e.path for e in chain(primary)] == paths
            assert chain_verifies(primary, KEY)
        finally:
            primary.switch.up()
            billing.close()
            audit.close()
            box.close()
            primary.close()
