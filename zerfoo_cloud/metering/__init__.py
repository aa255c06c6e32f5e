"""
Token metering: the meter and usage events.

The billing records and usage summaries it stores live in
`zerfoo_cloud.billing_records` (re-exported here). `TokenMeter` turns each
finished request into one `BillingRecord` in a `BillingStore` and, when a
`UsageRecorder` is given, one `UsageEvent`. Every record carries a unique
request id: storing the same id twice keeps one record, so a retried write
can never charge twice.

With a store on disk (LMDB) the meter never makes its caller wait for the
disk: `TokenMeter.record` checks its arguments, builds the record and queues
it; a background thread commits the queue in batches, one fsynced
transaction per batch (group commit). `TokenMeter.flush` (or
``await TokenMeter.aflush()``) returns once everything recorded before it is
on disk: after that, even a ``SIGKILL`` of the process loses none of it. See
``docs/metering.md``.

**Modules.** `events` (`UsageEvent`, `UsageRecorder`), `ndjson`
(`NDJSONRecorder`, `NDJSONFileRecorder`) and `meter` (`TokenMeter`); every
name is importable from this package.
"""

from __future__ import annotations

from zerfoo_cloud._field_limits import MAX_MODEL_LENGTH, MAX_TENANT_ID_BYTES
from zerfoo_cloud.billing_records import (
    MAX_REQUEST_ID_LENGTH,
    MAX_TOKENS,
    SUMMARY_KEYS,
    BillingRecord,
    UsageSummary,
    billable_model,
    new_request_id,
    summarize,
    summary_rows,
)
from zerfoo_cloud.metering.events import UsageEvent, UsageRecorder
from zerfoo_cloud.metering.meter import TokenMeter
from zerfoo_cloud.metering.ndjson import FsyncPolicy as FsyncPolicy
from zerfoo_cloud.metering.ndjson import NDJSONFileRecorder, NDJSONRecorder

__all__ = [
    "MAX_MODEL_LENGTH",
    "MAX_REQUEST_ID_LENGTH",
    "MAX_TENANT_ID_BYTES",
    "MAX_TOKENS",
    "SUMMARY_KEYS",
    "BillingRecord",
    "NDJSONFileRecorder",
    "NDJSONRecorder",
    "TokenMeter",
    "UsageEvent",
    "UsageRecorder",
    "UsageSummary",
    "billable_model",
    "new_request_id",
    "summarize",
    "summary_rows",
]
