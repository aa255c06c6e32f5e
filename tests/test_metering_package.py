"""The metering package: each concept in its module, every name re-exported."""

from __future__ import annotations

import logging

import pytest

from zerfoo_cloud import billing_records, metering
from zerfoo_cloud.metering import events, meter, ndjson
from zerfoo_cloud.stores.memory import MemoryBillingStore


@pytest.mark.parametrize(
    ("name", "home"),
    [
        ("UsageEvent", events),
        ("UsageRecorder", events),
        ("NDJSONRecorder", ndjson),
        ("NDJSONFileRecorder", ndjson),
        ("FsyncPolicy", ndjson),
        ("TokenMeter", meter),
        ("BillingRecord", billing_records),
        ("UsageSummary", billing_records),
        ("summarize", billing_records),
        ("new_request_id", billing_records),
    ],
)
def test_names_are_reexported_from_their_home(name: str, home: object) -> None:
    """``zerfoo_cloud.metering`` offers the very object its module defines."""
    assert getattr(metering, name) is getattr(home, name)


def test_every_public_name_is_importable() -> None:
    """Each name of ``__all__`` resolves on the package."""
    for name in metering.__all__:
        assert hasattr(metering, name), name


class _BrokenRecorder:
    def record(self, event: metering.UsageEvent) -> None:
        raise ConnectionError(event.tenant_id)


def test_meter_logs_on_the_metering_logger(caplog: pytest.LogCaptureFixture) -> None:
    """Users who configured ``zerfoo_cloud.metering`` still get the meter's lines."""
    token_meter = metering.TokenMeter(MemoryBillingStore(), recorder=_BrokenRecorder())
    with caplog.at_level(logging.WARNING, logger="zerfoo_cloud.metering"):
        token_meter.record("acme", 1, 2)
        token_meter.flush()
        token_meter.close()
    assert token_meter.recorder_failures == 1
    assert [r.name for r in caplog.records] == ["zerfoo_cloud.metering"]
