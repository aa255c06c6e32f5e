"""
Budget accounts: the two limiter buckets that hold one budget's period.

Each spend budget, in its current period, is two buckets of the tenant's
`zerfoo_cloud.stores.protocols.LimiterStore`, neither refilling
(``per_second = 0``):

- the *hold* bucket, of capacity ``amount``: admission takes a request's
  worst-case cost from it in the same atomic step as the tenant's other
  limits; settlement gives back the worst case less the actual cost, or
  charges what the request cost beyond it (into debt: later requests are
  refused). Its level is ``amount - spent - held``.
- the *spent* counter, of capacity `SPENT_CAPACITY`: charged by the actual
  cost at settlement only, so ``SPENT_CAPACITY - level`` is exactly what the
  period cost, and each charge sees the spending before and after it
  (`zerfoo_cloud.budgets.crossed_thresholds`).

Bucket keys start with the tenant id and a NUL, as every bucket of the
tenant (one Redis hash tag; cleared with the tenant), then name the key (for
a key's budget), the period kind, time zone, currency and period id: a
budget whose zone or currency changes starts a new period.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from zerfoo_cloud.budget_records import SpendBudget
from zerfoo_cloud.budgets.periods import BudgetPeriod, period_at

__all__ = [
    "SPENT_CAPACITY",
    "Bucket",
    "BudgetAccount",
    "accounts_at",
    "hold_level",
    "spent_from_level",
]

#: The capacity of a spent counter: the largest integer doubles hold
#: exactly, so ``SPENT_CAPACITY - level`` is exact.
SPENT_CAPACITY = float(2**53)

#: One bucket as `LimiterStore.admit` and `LimiterStore.settle` take it:
#: ``(key, capacity, per_second, cost)``.
Bucket = tuple[str, float, float, int]


def spent_from_level(level: float) -> int:
    """
    The micro-units a spent counter at *level* has counted.
    """
    return round(SPENT_CAPACITY - level)


def hold_level(level: float) -> int:
    """
    A hold bucket's *level* as whole micro-units (negative: debt).
    """
    return round(level)


@attrs.frozen
class BudgetAccount:
    """
    One budget of a tenant or key in the period containing an instant: its
    two buckets' keys and the asks that take from them.

    .. versionadded:: 0.1.0
    """

    tenant_id: str
    key_id: str | None
    budget: SpendBudget
    period: BudgetPeriod
    hold_key: str
    spent_key: str

    @classmethod
    def at(
        cls, tenant_id: str, key_id: str | None, budget: SpendBudget, now: float
    ) -> BudgetAccount:
        """
        The account of *budget* (of *key_id*'s key, or the tenant's when
        ``None``) in the period containing *now*.
        """
        period = period_at(budget.period, budget.timezone, now)
        zone = "" if period.kind == "lifetime" else budget.timezone
        tail = (
            f"\x00{key_id or ''}\x00{period.kind}\x00{zone}\x00"
            f"{budget.currency}\x00{period.id}"
        )
        return cls(
            tenant_id,
            key_id,
            budget,
            period,
            f"{tenant_id}\x00bh{tail}",
            f"{tenant_id}\x00bs{tail}",
        )

    def hold(self, cost: int) -> Bucket:
        """The ask taking *cost* from the hold bucket (admission)."""
        return (self.hold_key, float(self.budget.amount), 0.0, cost)

    def settlement(self, worst: int, actual: int) -> tuple[Bucket, Bucket]:
        """
        The settle buckets of a request that held *worst* and cost *actual*:
        the hold bucket gets ``worst - actual`` back (a negative delta
        charges the excess), the spent counter is charged *actual*.
        """
        return (
            (self.hold_key, float(self.budget.amount), 0.0, worst - actual),
            (self.spent_key, SPENT_CAPACITY, 0.0, -actual),
        )

    def spent_probe(self) -> Bucket:
        """The spent counter with nothing asked (to read it)."""
        return (self.spent_key, SPENT_CAPACITY, 0.0, 0)


def accounts_at(
    tenant_id: str,
    tenant_budgets: Sequence[SpendBudget],
    key_id: str | None,
    key_budgets: Sequence[SpendBudget],
    now: float,
) -> tuple[BudgetAccount, ...]:
    """
    The accounts one request of *tenant_id* made with key *key_id* takes
    from at *now*: the tenant's budgets, then the key's.
    """
    found = [BudgetAccount.at(tenant_id, None, b, now) for b in tenant_budgets]
    if key_id is not None:
        found.extend(BudgetAccount.at(tenant_id, key_id, b, now) for b in key_budgets)
    return tuple(found)
