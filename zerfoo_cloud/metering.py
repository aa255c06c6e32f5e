"""
Token metering: billing records and usage events.

`TokenMeter` turns each finished request into one `BillingRecord` in a
`BillingStore` and, when a `UsageRecorder` is given, one `UsageEvent`.
Every record carries a unique request id: storing the same id twice keeps
one record, so a retried write can never charge twice.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from zerfoo_cloud.errors import InvalidConfigError

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.stores.protocols import BillingStore

__all__ = [
    "BillingRecord",
    "NDJSONRecorder",
    "TokenMeter",
    "UsageEvent",
    "UsageRecorder",
    "new_request_id",
]


def new_request_id() -> str:
    """
    Return a new random request id (32 hex digits).

    .. versionadded:: 0.1.0
    """
    return uuid.uuid4().hex


def _utc(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        msg = "timestamps must be timezone-aware (UTC)"
        raise InvalidConfigError(msg, field="timestamp")
    return ts.astimezone(timezone.utc)


@attrs.frozen
class BillingRecord:
    """
    The token use of one request.

    Attributes:
        tenant_id: who is billed.
        input_tokens: prompt tokens.
        output_tokens: completion tokens.
        timestamp: when the request finished (aware, UTC).
        model: the model used ("" when unknown).
        request_id: unique per request; a store keeps one record per id.

    .. versionadded:: 0.1.0
    """

    tenant_id: str
    input_tokens: int
    output_tokens: int
    timestamp: datetime = attrs.field(converter=_utc)
    model: str = ""
    request_id: str = attrs.field(factory=new_request_id)

    @property
    def total_tokens(self) -> int:
        """
        Input plus output tokens.
        """
        return self.input_tokens + self.output_tokens


@attrs.frozen
class UsageEvent:
    """
    The token use of one request, as published to a `UsageRecorder`.

    *timestamp* is in whole Unix seconds. *tenant_id* is the tenant's id,
    never anything derived from its key.

    .. versionadded:: 0.1.0
    """

    tenant_id: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    timestamp: int

    def to_json(self) -> str:
        """
        Return the event as one line of compact JSON (no newline).
        """
        return json.dumps(attrs.asdict(self), separators=(",", ":"))


@runtime_checkable
class UsageRecorder(Protocol):
    """
    **Protocol**: Where usage events go (NDJSON, a message broker, ...).

    .. versionadded:: 0.1.0
    """

    def record(self, event: UsageEvent) -> None:
        """
        Publish *event*. May raise; callers log and count the failure.
        """


class NDJSONRecorder:
    """
    Write each `UsageEvent` as one JSON line to a stream, flushed per event.

    *stream* is a text stream (``sys.stdout``, ``io.StringIO``, a file opened
    for append) or a binary one. Lines are never interleaved between threads.

    .. versionadded:: 0.1.0
    """

    def __init__(self, stream: IO[str] | IO[bytes]) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def record(self, event: UsageEvent) -> None:
        """
        Write *event* and a newline in one write, then flush.
        """
        line = event.to_json() + "\n"
        with self._lock:
            stream: IO[Any] = self.stream
            try:
                stream.write(line)
            except TypeError:
                stream.write(line.encode())
            stream.flush()


def _check_tokens(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        msg = f"{name} must be a non-negative integer, not {value!r}"
        raise InvalidConfigError(msg, field=name)
    return value


class TokenMeter:
    """
    Records the token use of requests in a `BillingStore`.

    Args:
        store: where billing records go.
        recorder: also publish one `UsageEvent` per record here.
        clock: the time source, Unix seconds.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        store: BillingStore,
        *,
        recorder: UsageRecorder | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.store = store
        self.recorder = recorder
        self.clock = clock

    def record(
        self,
        tenant_id: str,
        input_tokens: int,
        output_tokens: int,
        *,
        model: str = "",
        request_id: str | None = None,
    ) -> BillingRecord:
        """
        Record one request's tokens and return the billing record.

        Raises:
            InvalidConfigError: a token count is negative or not an integer.
            StoreError: the store failed; the record was not lost (see `flush`).
        """
        now = self.clock()
        record = BillingRecord(
            tenant_id,
            _check_tokens("input_tokens", input_tokens),
            _check_tokens("output_tokens", output_tokens),
            datetime.fromtimestamp(now, timezone.utc),
            model,
            request_id or new_request_id(),
        )
        self.store.add([record])
        if self.recorder is not None:
            self.recorder.record(
                UsageEvent(tenant_id, model, input_tokens, output_tokens, int(now))
            )
        return record

    def query(
        self, tenant_id: str, start: datetime, end: datetime
    ) -> list[BillingRecord]:
        """
        Return the tenant's records with ``start <= timestamp <= end``, oldest first.
        """
        return self.store.query(tenant_id, _utc(start), _utc(end))

    def flush(self) -> None:
        """
        Return once every record made before the call is durable.
        """

    def close(self) -> None:
        """
        Flush and release resources.
        """
        self.flush()
