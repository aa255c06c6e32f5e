"""
Accounting of finished requests, never blocking the event loop on a disk or
a broker.

Each finished request becomes one billing record (`TokenMeter.record`), one
usage event (the server's own `UsageRecorder`, when it has one) and one audit
entry (`AuditLogger.log`). The meter and the logger only queue what they are
given (their writer threads commit it in batches), so they are called in
place, on the event loop too. In durable mode (the default of
`zerfoo_cloud.CloudServer`) the response then waits, without blocking the
loop, for the commit that holds its records: requests finishing together
share that commit (group commit), so each costs a wake-up, not an fsync.
The recorder may be slow (a file, a broker): its events take the one route
of usage events (`zerfoo_cloud.metering.usage_events.UsageEvents`, the
meter's when it has one), handed over by a background thread. A write that
fails is logged on the ``zerfoo_cloud.http`` logger and counted, and never
disturbs the response.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from zerfoo_cloud._queued_writing import wait_for
from zerfoo_cloud.audit import AuditAction, AuditResult
from zerfoo_cloud.errors import CloudError, StoreError
from zerfoo_cloud.http._policy import (
    Finished,
    audit_result,
    describe_failure,
    error_response,
)
from zerfoo_cloud.http._settlement import refusal_record
from zerfoo_cloud.metering import UsageEvent, new_request_id
from zerfoo_cloud.metering.usage_events import Recipient, UsageEvents

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.audit import AuditLogger
    from zerfoo_cloud.http._policy import ErrorResponse, Policy
    from zerfoo_cloud.metering import TokenMeter, UsageRecorder
    from zerfoo_cloud.tenants import Tenant

__all__ = [
    "CLIENT_CLOSED_REQUEST",
    "MODEL_KEY",
    "REQUEST_ID_KEY",
    "Accounting",
    "refuse_safely",
]

#: The key under which the adapters tell the app the request's id (ASGI:
#: ``scope["state"]``; WSGI: the environ): the ``x-request-id`` of its
#: response and the id of its billing record.
REQUEST_ID_KEY = "zerfoo_cloud.request_id"
#: The key under which `zerfoo_cloud.http.asgi.CloudMiddleware` tells the app
#: (in ``scope["state"]``) the model the policy read from the request and
#: checked against the tenant's allow list (``""`` when it names none).
MODEL_KEY = "zerfoo_cloud.model"
#: The status audited for a request whose client left before its body was
#: read (nginx's 499): no response was sent.
CLIENT_CLOSED_REQUEST = 499

_log = logging.getLogger("zerfoo_cloud.http")


def refuse_safely(  # noqa: PLR0917 - the whole of one refusal
    policy: Policy,
    accounting: Accounting,
    exc: BaseException,
    tenant: Tenant | None,
    request: tuple[str, str, str, str],
    correlation_id: str | None,
) -> tuple[ErrorResponse, Finished]:
    """
    `Policy.refuse` under a new request id, which cannot fail: when it
    raises, the refusal is a bare `error_response` for *exc* and the failure
    is logged and counted. *exc* not being a `CloudError` (a failure, not a
    refusal) is logged as one line. *request* is ``(model, method, path,
    remote_addr)``.
    """
    request_id = new_request_id()
    if not isinstance(exc, CloudError):
        _log.error(
            "request %s failed before the app ran: %s",
            request_id,
            describe_failure("request", exc),
        )
    try:
        return policy.refuse(
            exc,
            tenant,
            request,
            request_id=request_id,
            correlation_id=correlation_id,
        )
    except Exception as error:  # noqa: BLE001 - the bare refusal below
        accounting.note_failure(describe_failure("refusal", error), request_id)
    refusal = error_response(exc, request_id=request_id)
    return refusal, refusal_record(
        refusal.status, tenant, request, request_id, correlation_id
    )


class Accounting:
    """
    Records each finished request: billing, usage event, audit entry.

    Args:
        meter: where billing records go (``None``: none are made).
        audit: where audit entries go (``None``: none are made).
        recorder: publish one `UsageEvent` per request here too, unless it is
            the meter's own recorder (which already gets one), through the
            meter's `TokenMeter.usage_events` if it has them, else through
            a `UsageEvents` of its own.
        clock: the time source of usage events.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        meter: TokenMeter | None,
        *,
        audit: AuditLogger | None = None,
        recorder: UsageRecorder | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.meter = meter
        self.audit = audit
        self.clock = clock
        self.failures = 0
        events: UsageEvents | None = getattr(meter, "usage_events", None)
        if recorder is not None and events is not None and events.includes(recorder):
            recorder = None  # the meter's own: it gets the meter's event
        self.recorder = recorder
        self._recipients: tuple[Recipient, ...] = ()
        if recorder is not None:
            self._recipients = (Recipient(recorder, self._recorder_failed),)
            if events is None:
                events = UsageEvents(logger=_log)
        self._events = events

    def account(self, finished: Finished) -> None:
        """
        Record one request: its billing record and usage event (admitted
        requests only) and its audit entry. Never waits on a disk, and
        never raises: each of the three is tried whatever the others did,
        and a failure (or one named in *finished.failures*) is logged as
        one line and counted in `failures`.

        A request whose usage was clamped (`Finished.clamped`) is audited
        with `AuditResult.USAGE_CLAMPED`, one that overran a spend budget
        (`Finished.overrun`) with `AuditResult.BUDGET_OVERRUN`; a client's own request id
        (`Finished.correlation_id`) is logged with the request's id.
        """
        for failure in finished.failures:
            self._failed(failure, finished)
        if finished.correlation_id is not None:
            _log.info(
                "request %s: client request id %s",
                finished.request_id,
                finished.correlation_id,
            )
        usage = finished.usage
        if usage is not None:
            if self.meter is not None:
                try:
                    self.meter.record_request(
                        finished.tenant_id,
                        usage.prompt_tokens,
                        usage.completion_tokens,
                        model=finished.model,
                        request_id=finished.request_id,
                        key_id=finished.key_id,
                    )
                except Exception as exc:  # noqa: BLE001 - logged and counted; the response goes on
                    self._failed(describe_failure("billing record", exc), finished)
            if self._events is not None and self._recipients:
                try:
                    event = UsageEvent(
                        finished.tenant_id,
                        finished.model,
                        usage.prompt_tokens,
                        usage.completion_tokens,
                        int(self.clock()),
                        finished.key_id,
                    )
                    self._events.publish(event, self._recipients)
                except Exception as exc:  # noqa: BLE001 - logged and counted
                    self._failed(describe_failure("usage event", exc), finished)
        audit = self.audit
        if audit is not None:
            try:
                audit.log_request(
                    finished.tenant_id,
                    AuditAction.INFERENCE
                    if finished.authenticated
                    else AuditAction.AUTH,
                    _result_of(finished),
                    resource=finished.model or finished.path,
                    status_code=finished.status,
                    method=finished.method,
                    path=finished.path,
                    remote_addr=finished.remote_addr,
                )
            except Exception as exc:  # noqa: BLE001 - logged and counted
                self._failed(describe_failure("audit entry", exc), finished)

    def _recorder_failed(self, why: str) -> None:
        # In the usage events' thread: the recorder raised *why*.
        self.note_failure(f"usage event ({why})", None)

    def _failed(self, what: str, finished: Finished | None) -> None:
        self.note_failure(what, None if finished is None else finished.request_id)

    def note_failure(self, what: str, request_id: str | None) -> None:
        """
        Log, as one line, that the step *what* of accounting request
        *request_id* failed, and count it in `failures`.
        """
        self.failures += 1
        _log.error("accounting of request %s: %s failed", request_id or "-", what)

    def submit(self, finished: Finished) -> None:
        """
        `account` (kept as the ASGI adapter's name for it).
        """
        self.account(finished)

    async def submit_durable(self, finished: Finished) -> None:
        """
        `account`, then wait, without blocking the event loop, until the
        request's billing record (if it has one) and its audit entry are
        durable. Requests finishing together share one commit of each.

        Raises:
            StoreError: the store failed; the records stay queued and are
                retried, but are not durable yet.
        """
        self.account(finished)
        await self._committed(billed=finished.usage is not None)

    async def submit_refusal(self, finished: Finished, *, durable: bool) -> None:
        """
        `account` a refused request; with *durable*, wait (off the event
        loop) until its audit entry is durable. A store that fails is
        logged and counted, and the refusal goes out anyway: nothing was
        served, and the entry stays queued and is retried.
        """
        self.account(finished)
        if durable:
            try:
                await self._committed(billed=False)
            except StoreError:
                self._failed("durable audit entry", finished)

    def account_refusal(self, finished: Finished, *, durable: bool) -> None:
        """
        `submit_refusal` for a thread that may block (WSGI).
        """
        self.account(finished)
        if durable and self.audit is not None:
            try:
                self.audit.flush()
            except StoreError:
                self._failed("durable audit entry", finished)

    async def _committed(self, *, billed: bool) -> None:
        # The audit futures are taken before the meter is awaited: taken
        # after, they could wait for one more commit.
        audit = self.audit
        pending = [] if audit is None else audit.flush_futures()
        if billed:
            await self.aflush()
        for future in pending:
            await wait_for(future)

    async def aflush(self) -> None:
        """
        Wait until the meter's records are durable, off the event loop.
        """
        meter = self.meter
        if meter is None:
            return
        aflush = getattr(meter, "aflush", None)
        if aflush is not None:
            await aflush()
        else:
            await asyncio.to_thread(meter.flush)

    def flush_now(self) -> None:
        """
        Make the meter's records and the audit entries durable, blocking
        this thread.
        """
        if self.meter is not None:
            self.meter.flush()
        if self.audit is not None:
            self.audit.flush()

    def drain(self, timeout: float | None = None) -> bool:
        """
        Wait until every queued usage event has been published; ``False`` on
        timeout.
        """
        events = self._events
        return True if events is None else events.flush(timeout)


def _result_of(finished: Finished) -> AuditResult:
    # The audit result of a finished request.
    if finished.clamped:
        return AuditResult.USAGE_CLAMPED
    if finished.overrun:
        return AuditResult.BUDGET_OVERRUN
    return audit_result(finished.status)
