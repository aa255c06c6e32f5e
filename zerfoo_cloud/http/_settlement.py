"""
Settlement of a request: what an admitted request holds (`Ticket`), the
usage billed when none was reported (`fallback_usage`) or cut to what a
billing record holds (`clamp_usage`), the record of a finished request
(`Finished`), and the steps that account it without raising
(`metering_finisher`; `zerfoo_cloud.http._policy.Policy.finisher` for a
request that was admitted against limits).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from zerfoo_cloud.http._ratelimit_headers import (
    rate_limit_header_bytes,
    rate_limit_headers,
)
from zerfoo_cloud.http._usage import Usage
from zerfoo_cloud.metering import MAX_TOKENS, new_request_id

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from zerfoo_cloud.budgets.holds import BudgetHold
    from zerfoo_cloud.http._request_info import RequestInfo
    from zerfoo_cloud.http._response_meter import ResponseMeter
    from zerfoo_cloud.http._usage import UsageSlot
    from zerfoo_cloud.limits import Decision
    from zerfoo_cloud.tenants import Tenant

__all__ = [
    "Finished",
    "Ticket",
    "clamp_usage",
    "describe_failure",
    "fallback_usage",
    "metering_finisher",
    "refusal_record",
]

_FIRST_ERROR_STATUS = 400


def fallback_usage(info: RequestInfo, status: int, streamed_events: int) -> Usage:
    """
    The usage billed when neither the app nor the response reported one.

    A failed response (status 400 or more, or none at all) generated
    nothing. A stream counts one token per content event it carried. Any
    other response is billed its reservation: the prompt estimate, and the
    rest as completion.

    .. versionadded:: 0.1.0
    """
    if not 0 < status < _FIRST_ERROR_STATUS:
        return Usage(0, 0, "estimate")
    if streamed_events:
        return Usage(info.prompt_tokens, streamed_events, "estimate")
    return Usage(
        info.prompt_tokens, max(0, info.reserve - info.prompt_tokens), "estimate"
    )


class Ticket:
    """
    One admitted request: what it reserved and holds until it is settled.

    *requests* and *tokens* are the quota decisions of its admission
    (``None`` for an unlimited quota): its ``x-ratelimit-*`` headers.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "cost",
        "hold",
        "info",
        "overrun",
        "pin",
        "request_id",
        "requests",
        "reserved",
        "settled",
        "tenant",
        "tokens",
    )

    def __init__(  # noqa: PLR0917 - what an admission holds
        self,
        tenant: Tenant,
        info: RequestInfo,
        reserved: int,
        requests: Decision | None,
        tokens: Decision | None,
        pin: AbstractContextManager[object] | None,
        hold: BudgetHold | None = None,
    ) -> None:
        self.tenant = tenant
        self.info = info
        self.reserved = reserved
        self.requests = requests
        self.tokens = tokens
        self.pin = pin
        #: What it holds of its spend budgets (``None``: none apply).
        self.hold = hold
        #: Its actual cost in micro-units, once settled (0 without *hold*).
        self.cost = 0
        #: Micro-units it cost beyond its hold that left a budget over its
        #: amount (an app that used more tokens than reserved).
        self.overrun = 0
        self.request_id = new_request_id()
        self.settled = False

    @property
    def headers(self) -> list[tuple[str, str]]:
        """
        The ``x-ratelimit-*`` headers of the admission.
        """
        return rate_limit_headers(self.requests, self.tokens)

    @property
    def header_bytes(self) -> list[tuple[bytes, bytes]]:
        """
        `headers` in bytes, for ASGI.
        """
        return rate_limit_header_bytes(self.requests, self.tokens)


def describe_failure(step: str, exc: BaseException) -> str:
    """
    Name a failed step of the request path for a log line: the step and the
    exception's type, never its message (which may quote a request).

    .. versionadded:: 0.1.0
    """
    return f"{step} ({type(exc).__name__})"


def _measured(
    slot: UsageSlot, meter: ResponseMeter | None, failures: list[str]
) -> tuple[Usage | None, int]:
    """
    The usage reported or seen, and the streamed events; a step that raises
    counts as having found nothing and is added to *failures*.
    """
    try:
        usage = slot.get()
    except Exception as exc:  # noqa: BLE001 - named in failures; the reservation is billed
        failures.append(describe_failure("usage report", exc))
        return None, 0
    if meter is None:
        # The response could not be metered (the adapter reported why).
        return usage, 0
    try:
        if usage is None:
            usage = meter.usage()
        streamed = meter.streamed_events
    except Exception as exc:  # noqa: BLE001 - named in failures; the reservation is billed
        failures.append(describe_failure("usage extraction", exc))
        return None, 0
    return usage, streamed


def _unpin(ticket: Ticket) -> None:
    pin, ticket.pin = ticket.pin, None
    if pin is not None:
        pin.__exit__(None, None, None)


def _settle_apart(ticket: Ticket, used: int) -> list[str]:
    """
    Settle *ticket* one step at a time, after `Policy.settle` failed: give
    the slot back, reconcile the reservation, unpin the model. Returns the
    steps that failed too.
    """
    ticket.settled = True
    tenant = ticket.tenant
    failed = []
    try:
        tenant.release_concurrent()
    except Exception as exc:  # noqa: BLE001 - reported by the caller
        failed.append(describe_failure("slot release", exc))
    try:
        if used < ticket.reserved:
            tenant.refund_tokens(ticket.reserved - used)
        elif used > ticket.reserved:
            tenant.deduct_tokens(used - ticket.reserved)
    except Exception as exc:  # noqa: BLE001 - reported by the caller
        failed.append(describe_failure("token reconciliation", exc))
    if ticket.hold is not None:
        try:
            tenant.settle_budgets(ticket.hold, ticket.cost)
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            failed.append(describe_failure("budget settlement", exc))
    return _unpin_apart(ticket, failed)


async def _settle_apart_async(ticket: Ticket, used: int) -> list[str]:
    """
    `_settle_apart`, awaited: the store's asyncio calls
    (`Policy.settle_async` failed).
    """
    ticket.settled = True
    tenant = ticket.tenant
    failed = []
    try:
        await tenant.release_concurrent_async()
    except Exception as exc:  # noqa: BLE001 - reported by the caller
        failed.append(describe_failure("slot release", exc))
    try:
        await tenant.reconcile_tokens_async(ticket.reserved, used)
    except Exception as exc:  # noqa: BLE001 - reported by the caller
        failed.append(describe_failure("token reconciliation", exc))
    if ticket.hold is not None:
        try:
            await tenant.settle_budgets_async(ticket.hold, ticket.cost)
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            failed.append(describe_failure("budget settlement", exc))
    return _unpin_apart(ticket, failed)


def _unpin_apart(ticket: Ticket, failed: list[str]) -> list[str]:
    # The last step of settling apart: unpin, *failed* and its failure.
    try:
        _unpin(ticket)
    except Exception as exc:  # noqa: BLE001 - reported by the caller
        failed.append(describe_failure("model unpin", exc))
    return failed


def clamp_usage(usage: Usage) -> tuple[Usage, bool]:
    """
    Return *usage* with each count cut to `zerfoo_cloud.metering.MAX_TOKENS`
    (the most a billing record holds), and whether a count was cut.

    An app or upstream that reports more (``prompt_tokens = 2**64``) is
    billed the most a record can hold, never nothing.

    .. versionadded:: 0.1.0
    """
    prompt, completion = usage.prompt_tokens, usage.completion_tokens
    if prompt <= MAX_TOKENS and completion <= MAX_TOKENS:
        return usage, False
    return Usage(
        min(prompt, MAX_TOKENS), min(completion, MAX_TOKENS), usage.source
    ), True


class Finished(NamedTuple):
    """
    One finished request, as the accounting records it.

    *usage* is ``None`` for a refused request (it is audited, not billed).
    *request_id* is the id the client was sent (``x-request-id``) and, for
    an admitted request, its billing record's id; *correlation_id* is the
    client's own ``x-request-id`` when it sent a valid one (logged, never
    used as the id). *clamped* says the usage was cut to what a billing
    record holds (`clamp_usage`); *failures* names the steps of accounting
    that raised (each is logged and counted once); *key_id* is the id of
    the API key the request was admitted with (``""``: none known);
    *overrun* is the micro-units it cost beyond its spend budget hold that
    left a budget over its amount (`Ticket.overrun`; audited as
    ``budget_overrun``).

    .. versionadded:: 0.1.0
    """

    tenant_id: str
    usage: Usage | None
    model: str
    status: int
    method: str
    path: str
    remote_addr: str
    authenticated: bool = True
    request_id: str | None = None
    correlation_id: str | None = None
    clamped: bool = False
    failures: tuple[str, ...] = ()
    key_id: str = ""
    overrun: int = 0


def refusal_record(
    status: int,
    tenant: Tenant | None,
    request: tuple[str, str, str, str],
    request_id: str | None,
    correlation_id: str | None,
) -> Finished:
    """
    The record of a request refused with *status* before the app ran: audited,
    not billed. *request* is ``(model, method, path, remote_addr)``.

    .. versionadded:: 0.1.0
    """
    model, method, path, remote = request
    return Finished(
        "" if tenant is None else tenant.id,
        None,
        model,
        status,
        method,
        path,
        remote,
        tenant is not None,
        request_id=request_id,
        correlation_id=correlation_id,
    )


def metering_finisher(
    info: RequestInfo, slot: UsageSlot, tenant_id: str, request: tuple[str, str, str]
) -> Callable[[int, ResponseMeter | None], Finished]:
    """
    Return ``finish(status, meter)`` for metering without limits: the usage
    reported in *slot*, else the one *meter* saw, else `fallback_usage`,
    clamped as `clamp_usage` does. Like `Policy.finisher`, it never raises.
    *request* is ``(method, path, remote_addr)``.

    .. versionadded:: 0.1.0
    """
    method, path, remote = request

    def finish(status: int, meter: ResponseMeter | None) -> Finished:
        failures: list[str] = []
        usage, streamed = _measured(slot, meter, failures)
        billed, clamped = clamp_usage(usage or fallback_usage(info, status, streamed))
        return Finished(
            tenant_id,
            billed,
            info.model,
            status,
            method,
            path,
            remote,
            clamped=clamped,
            failures=tuple(failures),
        )

    return finish
