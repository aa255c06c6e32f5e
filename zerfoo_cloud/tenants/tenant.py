"""
Tenant: a handle on one tenant, enforcing its limits through a limiter.

A `Tenant` is a cheap snapshot of a `TenantRecord` made by `TenantManager`;
the limit state lives in the manager's `LimiterStore`, so every handle of a
tenant (in any thread, and with a shared store in any process) sees the same
quotas.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import attrs

from zerfoo_cloud.buckets import EPSILON
from zerfoo_cloud.budgets.accounts import BudgetAccount, accounts_at, spent_from_level
from zerfoo_cloud.limits import Decision, Rate
from zerfoo_cloud.tenants.admission import Admission
from zerfoo_cloud.tenants.key_limits import KeyLimits, tighter
from zerfoo_cloud.tenants.validation import check_units

if TYPE_CHECKING:
    from zerfoo_cloud.budgets.holds import BudgetHold
    from zerfoo_cloud.key_records import KeyRecord
    from zerfoo_cloud.limits import Admitted, RateLimiter
    from zerfoo_cloud.slots import Slots
    from zerfoo_cloud.tenant_records import TenantConfig, TenantRecord

__all__ = ["PERIOD_SECONDS", "Tenant"]

#: The period of ``rate_limit`` and ``token_budget``: one minute.
PERIOD_SECONDS = 60.0


class Tenant:
    """
    A handle on one tenant: its settings and its limits.

    Handles are cheap snapshots made by `TenantManager`; the limit state
    lives in the manager's `LimiterStore`, so every handle of a tenant (in
    any thread, and with a shared store in any process) sees the same
    quotas. Limits of 0 are unlimited: their checks always pass. Every
    limit is taken and given back through the manager's `RateLimiter`, that
    is through the store's one primitive (`LimiterStore.admit` and
    `LimiterStore.settle`).

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_accounts",
        "_all_slots",
        "_con_key",
        "_key",
        "_key_limits",
        "_limiter",
        "_record",
        "_release_keys",
        "_req_key",
        "_req_rate",
        "_tok_key",
        "_tok_rate",
    )

    def __init__(
        self,
        record: TenantRecord,
        limiter: RateLimiter,
        *,
        key: KeyRecord | None = None,
    ) -> None:
        self._record = record
        self._key = key
        self._limiter = limiter
        # The budget accounts of the periods last asked for, and the span
        # of Unix seconds they hold for: (accounts, from, until).
        self._accounts: tuple[tuple[BudgetAccount, ...], float, float] | None = None
        self._req_key = record.id + "\x00req"
        self._tok_key = record.id + "\x00tok"
        self._con_key = record.id + "\x00con"
        limit, budget = record.rate_limit, record.token_budget
        self._req_rate = Rate(limit, PERIOD_SECONDS) if limit else None
        self._tok_rate = Rate(budget, PERIOD_SECONDS) if budget else None
        self._key_limits = KeyLimits.of(record.id, key)
        # Constant for the handle: the slots a request takes and gives back.
        self._all_slots = self._slots()
        self._release_keys = self._slot_keys()

    def __repr__(self) -> str:
        r = self._record
        return (
            f"<Tenant {r.id!r} key={self.key_id or r.key_id}… rate_limit={r.rate_limit} "
            f"token_budget={r.token_budget} "
            f"max_concurrent_requests={r.max_concurrent_requests}>"
        )

    @property
    def id(self) -> str:
        """
        The tenant id.
        """
        return self._record.id

    @property
    def key(self) -> KeyRecord | None:
        """
        The key this handle was found by (`TenantManager.get_by_api_key`),
        or ``None`` for a handle found by id.
        """
        return self._key

    @property
    def key_id(self) -> str:
        """
        The id of `key`, or ``""`` when there is none: what billing
        records name the key by.
        """
        key = self._key
        return "" if key is None else key.id

    @property
    def record(self) -> TenantRecord:
        """
        The stored record this handle was made from.
        """
        return self._record

    def config(self) -> TenantConfig:
        """
        The tenant's settings, with the API key redacted.
        """
        return self._record.config()

    # -- the admission primitive ----------------------------------------

    def _asks(self, tokens: int) -> list[tuple[str, Rate, int]]:
        # The buckets one request with *tokens* tokens takes from: the
        # tenant's, then its key's own.
        asks: list[tuple[str, Rate, int]] = []
        if self._req_rate is not None:
            asks.append((self._req_key, self._req_rate, 1))
        if self._tok_rate is not None:
            asks.append((self._tok_key, self._tok_rate, tokens))
        if self._key_limits is not None:
            asks += self._key_limits.asks(tokens)
        return asks

    def _outcome(self, free: bool, decisions: tuple[Decision, ...]) -> Admission:
        # The admission for what `RateLimiter.admit` answered.
        req = decisions[0] if self._req_rate is not None else None
        tok = decisions[-1] if self._tok_rate is not None else None
        if not free:
            return Admission(False, req, tok, concurrency_refused=True)
        allowed = (req is None or req.allowed) and (tok is None or tok.allowed)
        return Admission(allowed, req, tok)

    def _key_outcome(
        self, free: bool, decisions: tuple[Decision, ...], counts: tuple[int, ...]
    ) -> Admission:
        # The admission for a handle whose key has limits of its own: each
        # decision the tighter of the tenant's and the key's.
        limits = self._key_limits
        assert limits is not None
        at = 0
        found: list[Decision | None] = []
        for rate in (self._req_rate, self._tok_rate, limits.req_rate, limits.tok_rate):
            found.append(None if rate is None else decisions[at])
            at += rate is not None
        t_req, t_tok, k_req, k_tok = found
        req, tok = tighter(t_req, k_req), tighter(t_tok, k_tok)
        if not free:
            by_key = self._key_slot_full(counts)
            return Admission(
                False, req, tok, concurrency_refused=True, refused_by_key=by_key
            )
        allowed = all(d is None or d.allowed for d in found)
        by_key = not allowed and (
            (req is not None and not req.allowed and req is k_req)
            or ((req is None or req.allowed) and tok is not None and tok is k_tok)
        )
        return Admission(allowed, req, tok, refused_by_key=by_key)

    def _key_slot_full(self, counts: tuple[int, ...]) -> bool:
        # Whether the key's slot (rather than the tenant's) refused.
        limits = self._key_limits
        assert limits is not None
        if not limits.max_concurrent:
            return False
        if not counts:  # the key's slot alone was asked
            return True
        return counts[-1] >= limits.max_concurrent

    def _admission(
        self,
        tokens: int,
        slot: tuple[str, int] | None,
        hold: BudgetHold | None = None,
    ) -> Admission:
        # One request, *tokens* tokens, *slot* (when given: with the key's
        # slot, if it has one) and *hold* (when given): all or none.
        asks = self._asks(tokens)
        if self._key_limits is None and (hold is None or not hold.accounts):
            if slot is None and not asks:
                return _ADMITTED
            return self._outcome(*self._limiter.admit(slot, asks))
        extra = () if hold is None else hold.asks()
        answer = self._limiter.admit_with(self._slots_for(slot), asks, extra)
        return self._admitted(answer, hold)

    async def _admission_async(
        self,
        tokens: int,
        slot: tuple[str, int] | None,
        hold: BudgetHold | None = None,
    ) -> Admission:
        # `_admission`, awaited.
        asks = self._asks(tokens)
        limiter = self._limiter
        if self._key_limits is None and (hold is None or not hold.accounts):
            if slot is None and not asks:
                return _ADMITTED
            return self._outcome(*await limiter.admit_async(slot, asks))
        extra = () if hold is None else hold.asks()
        answer = await limiter.admit_with_async(self._slots_for(slot), asks, extra)
        return self._admitted(answer, hold)

    def _slots_for(self, slot: tuple[str, int] | None) -> Slots:
        # The slots of `RateLimiter.admit_with` for *slot*: none, the one
        # slot, or the tenant's and its key's.
        slots = self._all_slots
        return slots if slot is not None and len(slots) > 1 else slot

    def _admitted(self, answer: Admitted, hold: BudgetHold | None) -> Admission:
        # The admission for what `RateLimiter.admit_with` answered.
        if self._key_limits is None:
            outcome = self._outcome(answer.free, answer.decisions)
        else:
            outcome = self._key_outcome(answer.free, answer.decisions, answer.counts)
        if answer.allowed or not outcome.allowed or hold is None or not hold.accounts:
            return outcome
        # Refused, not by a rate limit: by the first budget short of it.
        for account, level in zip(hold.accounts, answer.extra_levels, strict=True):
            if level + EPSILON < hold.worst:
                return attrs.evolve(outcome, allowed=False, budget=account)
        return attrs.evolve(outcome, allowed=False, budget=hold.accounts[0])

    def _slot(self) -> tuple[str, int] | None:
        # The concurrency slot a whole request takes when it takes at most
        # one (the tenant's, or its key's alone).
        limit = self._record.max_concurrent_requests
        if limit:
            return (self._con_key, limit)
        limits = self._key_limits
        return None if limits is None else limits.slot()

    def _slots(self) -> list[tuple[str, int]]:
        # Every concurrency slot a whole request takes: the tenant's, then
        # its key's.
        slots = []
        limit = self._record.max_concurrent_requests
        if limit:
            slots.append((self._con_key, limit))
        limits = self._key_limits
        key_slot = None if limits is None else limits.slot()
        if key_slot is not None:
            slots.append(key_slot)
        return slots

    def _slot_keys(self) -> str | list[str] | None:
        # The slot keys a finished request gives back.
        limits = self._key_limits
        if limits is None or not limits.max_concurrent:
            return self._con_key if self._record.max_concurrent_requests else None
        return [key for key, _ in self._slots()]

    def _token_buckets(self, delta: int) -> list[tuple[str, Rate, int]]:
        # The token buckets given *delta* tokens (a refund, or a charge
        # when negative): the tenant's and its key's.
        buckets = []
        rate = self._tok_rate
        if rate is not None and delta:
            buckets.append((self._tok_key, rate, delta))
        if self._key_limits is not None:
            buckets += self._key_limits.tokens(delta)
        return buckets

    # -- requests ---------------------------------------------------------

    def allow_request(self) -> bool:
        """
        Spend one request of the per-minute quota; ``False`` if none is left.
        """
        return self.acquire_request().allowed

    def acquire_request(self) -> Decision:
        """
        Like `allow_request`, returning the full decision (retry and reset times).
        """
        rate = self._req_rate
        if rate is None:
            return _UNLIMITED
        return self._limiter.acquire(self._req_key, rate)

    def request_quota(self) -> Decision:
        """
        The request quota now, without spending any.
        """
        rate = self._req_rate
        return _UNLIMITED if rate is None else self._limiter.peek(self._req_key, rate)

    # -- tokens -----------------------------------------------------------

    def consume_tokens(self, n: int) -> bool:
        """
        Spend *n* tokens if the budget holds them all; else spend none.
        """
        return self.acquire_tokens(n).allowed

    def acquire_tokens(self, n: int) -> Decision:
        """
        Like `consume_tokens`, returning the full decision.
        """
        check_units(n)
        rate = self._tok_rate
        if rate is None:
            return _UNLIMITED
        return self._limiter.acquire(self._tok_key, rate, n)

    def refund_tokens(self, n: int) -> None:
        """
        Give back *n* tokens (a reservation larger than the real use); the
        budget never rises above its capacity.
        """
        check_units(n)
        buckets = self._token_buckets(n)
        if buckets:
            self._limiter.settle(None, buckets)

    def deduct_tokens(self, n: int) -> None:
        """
        Charge *n* tokens unconditionally (use beyond a reservation).

        The budget may go into debt; later requests wait until it is repaid.
        """
        check_units(n)
        buckets = self._token_buckets(-n)
        if buckets:
            self._limiter.settle(None, buckets)

    def token_quota(self) -> Decision:
        """
        The token budget now, without spending any.
        """
        rate = self._tok_rate
        return _UNLIMITED if rate is None else self._limiter.peek(self._tok_key, rate)

    # -- both at once -----------------------------------------------------

    def admit(self, tokens: int) -> Admission:
        """
        Spend one request and reserve *tokens* tokens, atomically.

        Both are taken or neither is: a request refused by the token budget
        keeps its request quota, and the other way round. Concurrent calls
        can never both pass on the same remaining budget. No concurrency
        slot is taken (see `begin_request`).
        """
        check_units(tokens)
        return self._admission(tokens, None)

    # -- whole requests ---------------------------------------------------

    def begin_request(self, tokens: int, hold: BudgetHold | None = None) -> Admission:
        """
        Take a concurrency slot, one request and *tokens* tokens, and with
        *hold* its worst-case cost from each of its spend budgets: all or
        none.

        A request refused for concurrency keeps its request and token quota;
        one refused by a quota or a budget holds no slot: one atomic store
        call (`zerfoo_cloud.stores.protocols.LimiterStore.admit`). An allowed
        request must be finished with one `end_request`.
        """
        if type(tokens) is not int or tokens < 0:
            check_units(tokens)  # raises
        return self._admission(tokens, self._slot(), hold)

    async def begin_request_async(
        self, tokens: int, hold: BudgetHold | None = None
    ) -> Admission:
        """
        `begin_request`, awaited: on a store with ``admit_async`` (Redis)
        the event loop runs other work while the store answers; on any
        other store it is the sync call.
        """
        if type(tokens) is not int or tokens < 0:
            check_units(tokens)  # raises
        return await self._admission_async(tokens, self._slot(), hold)

    def end_request(
        self, reserved: int, used: int, charge: tuple[BudgetHold, int] | None = None
    ) -> tuple[int, ...]:
        """
        Finish a request admitted by `begin_request`: refund the part of its
        *reserved* tokens it did not use (or charge what it used beyond
        them), settle its spend budget hold with its actual cost (*charge*:
        the hold and the cost in micro-units), and give its concurrency slot
        back, even if the rest fails. One atomic store step.

        Returns:
            Each budget account's spending once settled, in micro-units
            (empty without *charge*).
        """
        settlement = self._settlement(reserved, used)
        if charge is not None and charge[0].accounts:
            slot_key, bucket = settlement or (None, None)
            extra = charge[0].settlement(charge[1])
            return _spent_after(self._limiter.settle_with(slot_key, bucket, extra))
        if settlement is not None:
            self._limiter.settle(*settlement)
        return ()

    async def end_request_async(
        self, reserved: int, used: int, charge: tuple[BudgetHold, int] | None = None
    ) -> tuple[int, ...]:
        """
        `end_request`, awaited, as `begin_request_async`.
        """
        settlement = self._settlement(reserved, used)
        if charge is None or not charge[0].accounts:
            if settlement is not None:
                await self._limiter.settle_async(*settlement)
            return ()
        slot_key, bucket = settlement or (None, None)
        extra = charge[0].settlement(charge[1])
        return _spent_after(
            await self._limiter.settle_with_async(slot_key, bucket, extra)
        )

    # -- spend budgets ----------------------------------------------------

    def budget_accounts(self, now: float) -> tuple[BudgetAccount, ...]:
        """
        The spend budget accounts a request of this handle takes from at
        *now*: the tenant's budgets, then those of `key`.
        """
        record = self._record
        key = self._key
        if not record.spend_budgets and (key is None or not key.spend_budgets):
            return ()
        kept = self._accounts
        if kept is not None and kept[1] <= now < kept[2]:
            return kept[0]
        if key is None:
            accounts = accounts_at(record.id, record.spend_budgets, None, (), now)
        else:
            accounts = accounts_at(
                record.id, record.spend_budgets, key.id, key.spend_budgets, now
            )
        # Kept while every period stays the same (handles live a short time
        # in the manager's cache; periods last a day at least).
        starts = [a.period.start_ts for a in accounts]
        ends = [a.period.end_ts for a in accounts]
        self._accounts = (
            accounts,
            max((t for t in starts if t is not None), default=-math.inf),
            min((t for t in ends if t is not None), default=math.inf),
        )
        return accounts

    async def settle_budgets_async(
        self, hold: BudgetHold, cost: int
    ) -> tuple[int, ...]:
        """
        Settle *hold* with its actual *cost* on its own, without the slot or
        the tokens (after `end_request_async` failed).
        """
        return _spent_after(
            await self._limiter.settle_with_async(None, None, hold.settlement(cost))
        )

    def settle_budgets(self, hold: BudgetHold, cost: int) -> tuple[int, ...]:
        """
        `settle_budgets_async`, for the sync path (`end_request` failed).
        """
        return _spent_after(
            self._limiter.settle_with(None, None, hold.settlement(cost))
        )

    def _settlement(
        self, reserved: int, used: int
    ) -> (
        tuple[
            str | list[str] | None,
            tuple[str, Rate, int] | list[tuple[str, Rate, int]] | None,
        ]
        | None
    ):
        # What `RateLimiter.settle` gives back for a finished request
        # (None: nothing to give back).
        if (
            type(reserved) is not int
            or type(used) is not int
            or min(reserved, used) < 0
        ):
            check_units(reserved)  # one of them raises
            check_units(used)
        if self._key_limits is not None:
            buckets = self._token_buckets(reserved - used)
            keys = self._release_keys
            if not buckets and keys is None:
                return None
            return keys, buckets
        tok_rate = self._tok_rate
        bucket = None
        if tok_rate is not None and used != reserved:
            bucket = (self._tok_key, tok_rate, reserved - used)
        slot_key = self._con_key if self._record.max_concurrent_requests else None
        if bucket is None and slot_key is None:
            return None
        return slot_key, bucket

    # -- concurrency ------------------------------------------------------

    def allow_concurrent(self) -> bool:
        """
        Take a concurrency slot; ``False`` if all `max_concurrent_requests` are busy.

        Every ``True`` must be paired with one `release_concurrent`.
        """
        slots = self._all_slots
        if not slots:
            return True
        return self._limiter.admit(slots[0] if len(slots) == 1 else slots, ())[0]

    def release_concurrent(self) -> None:
        """
        Give back a slot taken by `allow_concurrent` (or `begin_request`).
        """
        keys = self._release_keys
        if keys is not None:
            self._limiter.settle(keys, None)

    async def release_concurrent_async(self) -> None:
        """
        `release_concurrent`, awaited, as `begin_request_async`.
        """
        keys = self._release_keys
        if keys is not None:
            await self._limiter.settle_async(keys, None)

    async def reconcile_tokens_async(self, reserved: int, used: int) -> None:
        """
        Refund the part of *reserved* tokens not *used*, or charge the
        excess, without the slot (`refund_tokens`, `deduct_tokens`), awaited
        as `begin_request_async`.
        """
        check_units(reserved)
        check_units(used)
        buckets = self._token_buckets(reserved - used)
        if buckets:
            await self._limiter.settle_async(None, buckets)

    def in_flight(self) -> int:
        """
        How many concurrency slots are taken now.
        """
        return self._limiter.store.slots_in_use(self._con_key)

    # -- models -----------------------------------------------------------

    def model_allowed(self, model: str) -> bool:
        """
        Whether the tenant may use *model* (an empty allow list allows all)
        and, for a handle found by key, whether the key's scope lets it
        (`KeyRecord.model_scope`; an empty scope lets every model).
        """
        allow = self._record.model_allow_list
        key = self._key
        return (not allow or model in allow) and (
            key is None or key.scope_allows(model)
        )

    def model_limited(self) -> bool:
        """
        Whether some models are refused: the tenant has an allow list, or
        the key this handle was found by has a scope.
        """
        key = self._key
        return bool(self._record.model_allow_list) or (
            key is not None and bool(key.model_scope)
        )


def _spent_after(levels: list[float]) -> tuple[int, ...]:
    # The spent counters' readings among the levels of a settled hold (hold,
    # spent, hold, spent, ...).
    return tuple(spent_from_level(level) for level in levels[1::2])


_UNLIMITED = Decision(True, 0, 0, 0.0, 0.0)
_ADMITTED = Admission(True, None, None)
