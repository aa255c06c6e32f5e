"""
Random request streams against one spend budget: what is spent never
exceeds the amount except by the overruns charged (costs beyond a
request's hold), what is held is the worst case of the requests in flight,
and what is spent is exactly the sum of their actual costs.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timezone

from hypothesis import given
from hypothesis import strategies as st

from tests.budgets._support import KEY, PRICES, PROMPT, chat
from tests.pricing._support import Clock
from zerfoo_cloud import TenantConfig, TenantManager
from zerfoo_cloud.budget_records import SpendBudget
from zerfoo_cloud.budgets import BudgetEvent, crossed_thresholds
from zerfoo_cloud.errors import BudgetExceededError
from zerfoo_cloud.http._policy import Policy, PolicyOptions, Ticket
from zerfoo_cloud.http._usage import Usage

NOON = datetime(2026, 11, 12, 12, tzinfo=timezone.utc)

#: ("begin", max_tokens) or ("finish", which in-flight request, completion tokens).
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("begin"), st.integers(1, 60)),
        st.tuples(st.just("finish"), st.integers(0, 100), st.integers(0, 80)),
    ),
    max_size=40,
)


@given(amount=st.integers(1, 5000), ops=OPS)
def test_spent_stays_within_the_amount_but_for_overruns(
    amount: int, ops: list[tuple[int | str, ...]]
) -> None:
    clock = Clock(NOON)
    tenants = TenantManager(clock=clock)
    tenants.create(TenantConfig("acme", KEY, rate_limit=0, token_budget=0))
    budget = SpendBudget("month", amount, "USD", alert_at=(10, 50, 100))
    tenants.set_budgets("acme", [budget])
    events: list[BudgetEvent] = []
    policy = Policy(
        tenants,
        PolicyOptions(),
        prices=PRICES,
        clock=clock,
        budget_events=events.append,
    )
    tenant = tenants.get_by_api_key(KEY)
    flying: list[Ticket] = []
    spent = overruns = overrunning = 0
    for op in ops:
        if op[0] == "begin":
            info = policy.inspect("POST", "/v1/chat/completions", _body(int(op[1])))
            with contextlib.suppress(BudgetExceededError):
                flying.append(policy.admit(tenant, info))
        elif flying:
            ticket = flying.pop(int(op[1]) % len(flying))
            assert ticket.hold is not None
            policy.settle(ticket, Usage(PROMPT, int(op[2])), 200, 0)
            spent += ticket.cost
            overruns += max(0, ticket.cost - ticket.hold.worst)
            overrunning += ticket.cost > ticket.hold.worst
        (status,) = tenants.spend("acme")
        held = sum(t.hold.worst for t in flying if t.hold is not None)
        assert (status.spent, status.held) == (spent, held)
        assert status.spent + status.held <= amount + overruns
    # Every threshold the spending reached is reported, once each (an
    # overrun past all of them adds one event per overrunning request).
    reached = {e.threshold for e in events}
    assert reached == {
        p for p in budget.alert_at if budget.threshold_amount(p) <= spent
    }
    assert len(events) <= len(reached) + overrunning
    assert all(e.spent <= spent for e in events)


def _body(max_tokens: int) -> bytes:
    return json.dumps(chat(max_tokens)).encode()


@given(
    amount=st.integers(1, 10**9),
    percents=st.lists(st.integers(1, 100), unique=True, max_size=5).map(sorted),
    spent_before=st.integers(-10, 10**9 + 10),
    cost=st.integers(0, 10**9),
)
def test_crossed_thresholds_are_those_whose_amount_the_charge_passed(
    amount: int, percents: list[int], spent_before: int, cost: int
) -> None:
    budget = SpendBudget("day", amount, "USD", alert_at=tuple(percents))
    spent_after = spent_before + cost
    assert crossed_thresholds(budget, spent_before, spent_after) == [
        p for p in percents if spent_before < budget.threshold_amount(p) <= spent_after
    ]
