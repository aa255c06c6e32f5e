"""
The sans-IO policy core shared by the ASGI and WSGI adapters: `Policy`.

The adapters only translate HTTP; every decision is made here, in plain
functions and methods that take and return values:

- `api_key_from` (`zerfoo_cloud.http._api_key`): the key from
  ``Authorization: Bearer`` or ``x-api-key``.
- `inspect_request` (`zerfoo_cloud.http._inspect`): the model, the prompt
  estimate (`zerfoo_cloud.http._estimate`), the token reservation,
  streaming, and the ``stream_options.include_usage`` rewrite.
- `Policy.authenticate`, `Policy.admit` (allow list, then the concurrency
  slot, one request and the token reservation in one atomic step),
  `Policy.settle` (reconcile the reservation with the real use, give the slot
  back; `zerfoo_cloud.http._settlement`).
- `error_response` (`zerfoo_cloud.http._errors`): OpenAI-shaped errors,
  status, type and code read from the exception (`status_for`), with
  ``Retry-After`` and the ``x-ratelimit-*`` headers
  (`zerfoo_cloud.http._ratelimit_headers`).

A reservation larger than the tenant's whole token budget is refused at once
with `RequestOverBudgetError` (429, no ``Retry-After``: waiting never helps).
With a price table, a model it cannot price is refused with
`UnpricedModelError` (403 ``model_not_priced``) before anything is taken.
A tenant or key with spend budgets holds each request's worst-case cost in
the same atomic step as its other limits, and is refused with
`BudgetExceededError` (429 ``insufficient_quota``) when a budget cannot
hold it; settlement charges the actual cost and reports every threshold
reached as a `BudgetEvent` (see ``docs/billing.md``).

Every name above is importable from this module.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Protocol

from zerfoo_cloud.budgets.events import BudgetEvent, crossed_thresholds
from zerfoo_cloud.budgets.holds import BudgetHold, actual_cost, worst_cost
from zerfoo_cloud.errors import (
    BudgetExceededError,
    BudgetUnenforceableError,
    InvalidRequestError,
    ModelNotAllowedError,
    RateLimitedError,
    RequestOverBudgetError,
    StoreError,
    TenantNotFoundError,
    UnauthorizedError,
)
from zerfoo_cloud.http._api_key import _api_key_from_any, api_key_from
from zerfoo_cloud.http._audit_result import audit_result
from zerfoo_cloud.http._errors import (
    ErrorResponse,
    error_response,
    status_for,
)
from zerfoo_cloud.http._estimate import estimate_prompt_tokens
from zerfoo_cloud.http._inspect import (
    MAX_TOKENS_LIMIT,
    inspect_for_metering,
    inspect_request,
)
from zerfoo_cloud.http._options import PolicyOptions
from zerfoo_cloud.http._ratelimit_headers import (
    format_duration,
    rate_limit_header_bytes,
    rate_limit_headers,
)
from zerfoo_cloud.http._request_ids import client_request_id
from zerfoo_cloud.http._request_info import RequestInfo
from zerfoo_cloud.http._settlement import (
    Finished,
    Ticket,
    _measured,
    _settle_apart,
    _settle_apart_async,
    _unpin,
    clamp_usage,
    describe_failure,
    fallback_usage,
    metering_finisher,
    refusal_record,
)
from zerfoo_cloud.metering import new_request_id

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AbstractContextManager

    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.budgets.accounts import BudgetAccount
    from zerfoo_cloud.http._response_meter import ResponseMeter
    from zerfoo_cloud.http._usage import Usage, UsageSlot
    from zerfoo_cloud.key_records import KeyRecord
    from zerfoo_cloud.pricing import ModelPrice, PriceTable
    from zerfoo_cloud.tenant_records import TenantRecord
    from zerfoo_cloud.tenants import Admission, Tenant, TenantManager

__all__ = [
    "MAX_TOKENS_LIMIT",
    "ErrorResponse",
    "Finished",
    "Policy",
    "PolicyOptions",
    "RequestInfo",
    "ResourcePinner",
    "Ticket",
    "_api_key_from_any",
    "api_key_from",
    "audit_result",
    "clamp_usage",
    "client_request_id",
    "describe_failure",
    "error_response",
    "estimate_prompt_tokens",
    "fallback_usage",
    "format_duration",
    "inspect_for_metering",
    "inspect_request",
    "metering_finisher",
    "new_request_id",
    "rate_limit_header_bytes",
    "rate_limit_headers",
    "status_for",
]

_log = logging.getLogger("zerfoo_cloud.http")

#: Seconds a client refused for concurrency is told to wait: a slot usually
#: frees within one (there is no refill time to compute).
_CONCURRENCY_RETRY_AFTER = 1.0


class ResourcePinner(Protocol):
    """
    **Protocol**: What `CloudServer` needs of a resource manager.

    `zerfoo_cloud.ResourceManager` provides it: `touch` marks a model as
    used now, `use` keeps it loaded (pinned) while the block runs. Both may
    raise `LookupError` (`zerfoo_cloud.ModelNotLoadedError`) for a model the
    manager does not hold; the request then runs unpinned.

    .. versionadded:: 0.1.0
    """

    def touch(self, model_id: str) -> object: ...

    def use(self, model_id: str) -> AbstractContextManager[object]: ...


class Policy:
    """
    Authentication, admission and settlement of requests (sans-IO).

    With *prices* (the meter's price table), `admit` refuses a model the
    table has no price for at *clock*'s time, before anything is taken and
    before the app runs; a request that lets the app choose its model needs
    the table's default price, and one that names no model at all (listing
    models, an upload) is not checked.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        tenants: TenantManager,
        options: PolicyOptions,
        *,
        resources: ResourcePinner | None = None,
        prices: PriceTable | None = None,
        clock: Clock = time.time,
        budget_events: Callable[[BudgetEvent], None] | None = None,
    ) -> None:
        self.tenants = tenants
        self.options = options
        self.resources = resources
        #: The price table models must be priced in (``None``: no check).
        self.prices = prices
        self.clock = clock
        #: Called (on the event loop: it must not block) with every
        #: `BudgetEvent`; ``None``: events are dropped.
        self.budget_events = budget_events
        self.healthy = True
        #: Whether the limiter store waits on the network (it has
        #: ``admit_async``: Redis): the ASGI adapter then awaits
        #: `admit_async` and `finisher_async`, else it calls `admit` and
        #: `finisher` as they are (memory, LMDB: no wait, no thread hop).
        self.limits_wait = hasattr(tenants.limits, "admit_async")
        #: Whether the tenant store waits on the network (``blocking_io``):
        #: `authenticate_async` then reads it in a worker thread.
        self.tenants_wait = bool(getattr(tenants.store, "blocking_io", False))

    def health(self) -> tuple[int, bytes]:
        """
        Return the ``/healthz`` status and body.
        """
        if self.healthy:
            return 200, b'{"status":"ok"}'
        return 503, b'{"status":"degraded"}'

    def authenticate(self, api_key: str | None) -> Tenant:
        """
        Return the tenant owning *api_key*.

        Raises:
            UnauthorizedError: no key, or no tenant has it.
        """
        if api_key is None:
            raise UnauthorizedError("missing")
        try:
            return self.tenants.get_by_api_key(api_key)
        except TenantNotFoundError:
            raise UnauthorizedError("invalid") from None

    async def authenticate_async(self, api_key: str | None) -> Tenant:
        """
        `authenticate` without blocking the event loop: a tenant the cache
        holds is returned at once; a lookup in a tenant store that waits on
        the network (``blocking_io``) runs in a worker thread.
        """
        if api_key is not None and self.tenants_wait:
            hit = self.tenants.cached_by_api_key(api_key)
            if hit is not None:
                return hit
            return await asyncio.to_thread(self.authenticate, api_key)
        return self.authenticate(api_key)

    def inspect(self, method: str, path: str, body: bytes) -> RequestInfo:
        """
        `inspect_request` with this policy's options.
        """
        return inspect_request(method, path, body, self.options)

    def admit(self, tenant: Tenant, info: RequestInfo) -> Ticket:
        """
        Admit one request of *tenant*, or refuse it having taken nothing.

        Order: the model allow list, then the model's price (with a price
        table), then the reservation against the whole token budget, then a concurrency slot, one request and the token
        reservation in one atomic step (`Tenant.begin_request`). A refusal
        by one limit leaves the others untouched.

        Raises:
            InvalidRequestError: the request lets the app choose its model
                and the tenant has an allow list.
            ModelNotAllowedError: the model is not in the allow list.
            UnpricedModelError: the price table has no price for the model
                (nor a default) now.
            RequestOverBudgetError: the reservation exceeds the tenant's
                whole token budget (no wait would let it pass).
            RateLimitedError: a limit refused it.
        """
        reserve, hold = self._reserve(tenant, info)
        admission = tenant.begin_request(reserve, hold)
        self._check_admission(tenant, admission, reserve)
        try:
            pin = self._pin_for(info.model)
        except BaseException:
            tenant.end_request(reserve, reserve, None if hold is None else (hold, 0))
            raise
        return Ticket(
            tenant, info, reserve, admission.requests, admission.tokens, pin, hold
        )

    async def admit_async(self, tenant: Tenant, info: RequestInfo) -> Ticket:
        """
        `admit`, awaited: the event loop runs other work while a limiter
        store on the network (Redis) answers (`Tenant.begin_request_async`).

        Raises:
            StoreUnavailableError: the limiter store cannot be reached;
                nothing was taken.
            InvalidRequestError, ModelNotAllowedError, UnpricedModelError,
            RequestOverBudgetError, RateLimitedError: as `admit`.
        """
        reserve, hold = self._reserve(tenant, info)
        admission = await tenant.begin_request_async(reserve, hold)
        self._check_admission(tenant, admission, reserve)
        try:
            pin = self._pin_for(info.model)
        except BaseException:
            await tenant.end_request_async(
                reserve, reserve, None if hold is None else (hold, 0)
            )
            raise
        return Ticket(
            tenant, info, reserve, admission.requests, admission.tokens, pin, hold
        )

    def _reserve(
        self, tenant: Tenant, info: RequestInfo
    ) -> tuple[int, BudgetHold | None]:
        # The checks before taking anything; returns the token reservation
        # and what the request holds of its spend budgets.
        model = info.model
        record = tenant.record
        limited = tenant.model_limited()
        if info.default_model and limited:
            msg = (
                "You must provide a model parameter: this key may use only some models."
            )
            raise InvalidRequestError(msg, code="missing_model", param="model")
        if model and (not tenant.model_allowed(model) or (info.mangled and limited)):
            raise ModelNotAllowedError(tenant.id, model)
        prices = self.prices
        price = None
        now = self.clock()
        if prices is not None and (model or info.default_model):
            # Raises UnpricedModelError; a price in force now stays in force
            # when the request finishes (prices are never taken away). A
            # request that uses no model (listing models, an upload) passes;
            # one whose model the app picks needs the default price.
            price = prices.price_at(model, datetime.fromtimestamp(now, timezone.utc))
        budget = record.token_budget
        reserve = info.reserve
        if budget and reserve > budget:
            raise RequestOverBudgetError(tenant.id, model, budget, reserve)
        key = tenant.key
        if key is not None and key.token_budget and reserve > key.token_budget:
            raise RequestOverBudgetError(
                tenant.id, model, key.token_budget, reserve, key_id=key.id
            )
        accounts = tenant.budget_accounts(now)
        if not accounts:
            return reserve, None
        return reserve, self._hold(tenant, info, reserve, (prices, price), accounts)

    @staticmethod
    def _hold(
        tenant: Tenant,
        info: RequestInfo,
        reserve: int,
        priced: tuple[PriceTable | None, ModelPrice | None],
        accounts: tuple[BudgetAccount, ...],
    ) -> BudgetHold | None:
        # What the request holds of its spend budgets *accounts*: its
        # worst-case cost in each, at *priced* (the table and the model's
        # price in force now); None when it uses no model.
        prices, price = priced
        if prices is None:
            raise BudgetUnenforceableError(tenant.id, "the server has no prices")
        for account in accounts:
            if account.budget.currency != prices.currency:
                why = (
                    f"a {account.budget.period} budget is in "
                    f"{account.budget.currency}, prices are in {prices.currency}"
                )
                raise BudgetUnenforceableError(tenant.id, why)
        if price is None:
            return None  # no model (listing models, an upload): no cost
        worst = worst_cost(price, info.prompt_tokens, reserve)
        for account in accounts:
            if worst > account.budget.amount:
                raise BudgetExceededError(
                    tenant.id,
                    account.key_id,
                    account.budget.period,
                    None,
                    None,
                    too_large=True,
                )
        return BudgetHold(accounts, worst, prices, info.model)

    def _check_admission(
        self, tenant: Tenant, admission: Admission, reserve: int
    ) -> None:
        # Raise `RateLimitedError` for a refused admission, naming whose
        # limit refused: the tenant's, or its key's own (or
        # `BudgetExceededError` for a spend budget).
        if admission.allowed:
            return
        limits: TenantRecord | KeyRecord = tenant.record
        key_id = None
        if admission.refused_by_key and tenant.key is not None:
            limits = tenant.key
            key_id = limits.id
        if admission.concurrency_refused:
            raise RateLimitedError(
                tenant.id,
                "concurrency",
                _CONCURRENCY_RETRY_AFTER,
                requests=admission.requests,
                tokens=admission.tokens,
                capacity=limits.max_concurrent_requests,
                key_id=key_id,
            )
        account = admission.budget
        if account is not None and admission.refused_by == "budget":
            end = account.period.end
            raise BudgetExceededError(
                tenant.id,
                account.key_id,
                account.budget.period,
                None if end is None else end.isoformat(),
                None if end is None else max(1.0, end.timestamp() - self.clock()),
            )
        refused = admission.refused_by or "requests"
        by_requests = refused == "requests"
        raise RateLimitedError(
            tenant.id,
            refused,
            admission.retry_after,
            requests=admission.requests,
            tokens=admission.tokens,
            requested=1 if by_requests else reserve,
            capacity=limits.rate_limit if by_requests else limits.token_budget,
            key_id=key_id,
        )

    def _pin_for(self, model: str) -> AbstractContextManager[object] | None:
        # The pin keeping *model* loaded while the request runs, if any.
        if model and self.resources is not None:
            return self._pin(model)
        return None

    def _pin(self, model: str) -> AbstractContextManager[object] | None:
        assert self.resources is not None
        try:
            self.resources.touch(model)
            pin = self.resources.use(model)
            pin.__enter__()
        except LookupError:
            return None
        return pin

    def quota_headers(self, tenant: Tenant | None) -> list[tuple[str, str]]:
        """
        The ``x-ratelimit-*`` headers of *tenant* now (for refused requests).
        """
        if tenant is None:
            return []
        record = tenant.record
        return rate_limit_headers(
            tenant.request_quota() if record.rate_limit else None,
            tenant.token_quota() if record.token_budget else None,
        )

    def refusal(
        self,
        exc: BaseException,
        tenant: Tenant | None,
        *,
        request_id: str | None = None,
    ) -> ErrorResponse:
        """
        The response refusing a request with *exc*, with quota headers
        (none when they cannot be read) and *request_id*.
        """
        if isinstance(exc, RateLimitedError):
            headers = rate_limit_headers(exc.requests, exc.tokens)
        elif isinstance(exc, StoreError):
            headers = []  # the store failed: not asked again
        else:
            try:
                headers = self.quota_headers(tenant)
            except Exception:  # noqa: BLE001 - the refusal goes out without them
                headers = []
        return error_response(exc, headers, request_id=request_id)

    def refuse(
        self,
        exc: BaseException,
        tenant: Tenant | None,
        request: tuple[str, str, str, str],
        *,
        request_id: str | None = None,
        correlation_id: str | None = None,
    ) -> tuple[ErrorResponse, Finished]:
        """
        The response refusing a request with *exc*, and the record of it.

        *request* is ``(model, method, path, remote_addr)``; *request_id*
        is sent as ``x-request-id`` and in the error body.
        """
        refusal = self.refusal(exc, tenant, request_id=request_id)
        return refusal, refusal_record(
            refusal.status, tenant, request, request_id, correlation_id
        )

    def finisher(
        self,
        ticket: Ticket,
        slot: UsageSlot,
        request: tuple[str, str, str],
        *,
        correlation_id: str | None = None,
    ) -> Callable[[int, ResponseMeter | None], Finished]:
        """
        Return ``finish(status, meter)``: settles *ticket* and returns the
        record of the request. *request* is ``(method, path, remote_addr)``.

        ``finish`` never raises: it is the one step that accounts an
        admitted request, so it must run to its end. The usage is the one
        the app reported in *slot*, else the one *meter* saw, else
        `fallback_usage`; a step that raises is skipped and named in
        `Finished.failures` (a failed usage extraction, or *meter* ``None``
        for a response the meter could not follow, bills the reservation
        unless the app reported its usage);
        the counts are clamped to what a billing record holds
        (`clamp_usage`); and when `settle` raises, the slot and the
        reservation are settled one by one instead.
        """

        def finish(status: int, meter: ResponseMeter | None) -> Finished:
            failures: list[str] = []
            usage, streamed = _measured(slot, meter, failures)
            billed = usage or fallback_usage(ticket.info, status, streamed)
            billed, clamped = clamp_usage(billed)
            try:
                self.settle(ticket, billed, status, streamed)
            except Exception as exc:  # noqa: BLE001 - settled step by step below
                failures.append(describe_failure("settlement", exc))
                failures.extend(_settle_apart(ticket, billed.total_tokens))
            return _finished(
                ticket, billed, status, request, correlation_id, clamped, failures
            )

        return finish

    def finisher_async(
        self,
        ticket: Ticket,
        slot: UsageSlot,
        request: tuple[str, str, str],
        *,
        correlation_id: str | None = None,
    ) -> Callable[[int, ResponseMeter | None], Awaitable[Finished]]:
        """
        `finisher`, awaited: ``await finish(status, meter)`` settles with
        `settle_async` (then step by step with the store's asyncio calls),
        so the event loop runs other work while a limiter store on the
        network answers. It never raises either.
        """

        async def finish(status: int, meter: ResponseMeter | None) -> Finished:
            failures: list[str] = []
            usage, streamed = _measured(slot, meter, failures)
            billed = usage or fallback_usage(ticket.info, status, streamed)
            billed, clamped = clamp_usage(billed)
            try:
                await self.settle_async(ticket, billed, status, streamed)
            except Exception as exc:  # noqa: BLE001 - settled step by step below
                failures.append(describe_failure("settlement", exc))
                failures.extend(await _settle_apart_async(ticket, billed.total_tokens))
            return _finished(
                ticket, billed, status, request, correlation_id, clamped, failures
            )

        return finish

    def settle(
        self, ticket: Ticket, usage: Usage | None, status: int, streamed_events: int
    ) -> Usage:
        """
        Finish an admitted request: reconcile its reservation with *usage*
        (refund the rest, or charge the excess), unpin its model and give its
        concurrency slot back. Runs once; later calls return the same usage
        without doing anything.

        Returns:
            The usage to bill: *usage*, or `fallback_usage` when it is
            ``None``.
        """
        billed = usage or fallback_usage(ticket.info, status, streamed_events)
        if ticket.settled:
            return billed
        ticket.settled = True
        cost = self._cost(ticket, billed)
        try:
            spent = ticket.tenant.end_request(
                ticket.reserved, billed.total_tokens, _charge(ticket, cost)
            )
        finally:
            _unpin(ticket)
        if spent:
            self._budget_settled(ticket, spent)
        return billed

    async def settle_async(
        self, ticket: Ticket, usage: Usage | None, status: int, streamed_events: int
    ) -> Usage:
        """
        `settle`, awaited (`Tenant.end_request_async`).
        """
        billed = usage or fallback_usage(ticket.info, status, streamed_events)
        if ticket.settled:
            return billed
        ticket.settled = True
        cost = self._cost(ticket, billed)
        try:
            spent = await ticket.tenant.end_request_async(
                ticket.reserved, billed.total_tokens, _charge(ticket, cost)
            )
        finally:
            _unpin(ticket)
        if spent:
            self._budget_settled(ticket, spent)
        return billed

    def _cost(self, ticket: Ticket, billed: Usage) -> int:
        # The actual cost charged to the ticket's budgets (0 without), kept
        # on the ticket for a settlement made step by step.
        hold = ticket.hold
        if hold is None:
            return 0
        try:
            cost = actual_cost(
                hold.prices,
                hold.model,
                billed.prompt_tokens,
                billed.completion_tokens,
                self.clock(),
            )
        except Exception as exc:  # noqa: BLE001 - the hold is charged instead
            _log.error(
                "request %s: %s; its budgets are charged its worst case",
                ticket.request_id,
                describe_failure("budget cost", exc),
            )
            cost = hold.worst
        ticket.cost = cost
        return cost

    def _budget_settled(self, ticket: Ticket, spent: tuple[int, ...]) -> None:
        # Report the thresholds each budget's spending reached, and an
        # overrun (a cost beyond the hold that left a budget over its
        # amount). Each charge is settled atomically, so each threshold is
        # reached by one request on one host. Never raises: the request is
        # settled already.
        try:
            self._report_spending(ticket, spent)
        except Exception as exc:  # noqa: BLE001 - settled; only the report is lost
            _log.error(
                "request %s: %s",
                ticket.request_id,
                describe_failure("budget events", exc),
            )

    def _report_spending(self, ticket: Ticket, spent: tuple[int, ...]) -> None:
        hold = ticket.hold
        if hold is None:
            return
        cost = ticket.cost
        beyond = max(0, cost - hold.worst)
        for account, after in zip(hold.accounts, spent, strict=True):
            budget = account.budget
            over = max(0, after - budget.amount)
            if over and beyond:
                ticket.overrun = max(ticket.overrun, min(over, beyond))
            reached = crossed_thresholds(budget, after - cost, after)
            if not reached and over and beyond:
                reached = [budget.alert_at[-1] if budget.alert_at else 100]
            for threshold in reached:
                self._emit(
                    BudgetEvent(
                        tenant_id=account.tenant_id,
                        key_id=account.key_id,
                        period=budget.period,
                        period_start=account.period.start_ts,
                        threshold=threshold,
                        spent=after,
                        amount=budget.amount,
                        currency=budget.currency,
                        exhausted=after >= budget.amount,
                        overrun=over,
                    )
                )

    def _emit(self, event: BudgetEvent) -> None:
        callback = self.budget_events
        if callback is None:
            return
        try:
            callback(event)
        except Exception as exc:  # noqa: BLE001 - the request is not the callee's concern
            _log.error(
                "the budget event callback failed: %s",
                describe_failure("budget event", exc),
            )


def _charge(ticket: Ticket, cost: int) -> tuple[BudgetHold, int] | None:
    # What `Tenant.end_request` settles of the ticket's spend budgets.
    return None if ticket.hold is None else (ticket.hold, cost)


def _finished(  # noqa: PLR0917 - the whole record of one request
    ticket: Ticket,
    billed: Usage,
    status: int,
    request: tuple[str, str, str],
    correlation_id: str | None,
    clamped: bool,
    failures: list[str],
) -> Finished:
    # The record of a settled request.
    method, path, remote = request
    return Finished(
        ticket.tenant.id,
        billed,
        ticket.info.model,
        status,
        method,
        path,
        remote,
        request_id=ticket.request_id,
        correlation_id=correlation_id,
        clamped=clamped,
        failures=tuple(failures),
        key_id=ticket.tenant.key_id,
        overrun=ticket.overrun,
    )
