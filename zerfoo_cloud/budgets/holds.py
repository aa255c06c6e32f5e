"""
BudgetHold: what one request holds of its spend budgets, and what it costs.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

import attrs

from zerfoo_cloud.budgets.accounts import Bucket, BudgetAccount
from zerfoo_cloud.errors import UnpricedModelError

if TYPE_CHECKING:
    from zerfoo_cloud.pricing import ModelPrice, PriceTable

__all__ = ["BudgetHold", "actual_cost", "worst_cost"]


def worst_cost(price: ModelPrice, prompt_tokens: int, reserve: int) -> int:
    """
    The most a request may cost at *price* (the model's price in force at
    its admission): its prompt estimate as input and the rest of its token
    reservation (the completion allowance) as output.
    """
    prompt = min(prompt_tokens, reserve)
    return price.cost(prompt, reserve - prompt)


def actual_cost(
    prices: PriceTable,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    now: float,
) -> int:
    """
    What a request that finished at *now* costs: the computation that
    prices its billing record (`zerfoo_cloud.metering.TokenMeter`), so what
    a budget counts is what is billed. A model the table cannot price costs
    0, as its billing record does.
    """
    when = datetime.fromtimestamp(now, timezone.utc)
    try:
        return prices.cost_of(model, prompt_tokens, completion_tokens, when=when)
    except UnpricedModelError:
        return 0


@attrs.frozen
class BudgetHold:
    """
    What one admitted request holds of its spend budgets.

    Attributes:
        accounts: the budget accounts it holds from (the tenant's, then the
            key's), in the period of its admission.
        worst: micro-units held in each: its worst-case cost.
        prices: the price table it was priced with at admission.
        model: the model it is billed for.

    .. versionadded:: 0.1.0
    """

    accounts: tuple[BudgetAccount, ...]
    worst: int
    prices: PriceTable
    model: str

    def asks(self) -> list[Bucket]:
        """The hold asks of admission, one per account."""
        return [account.hold(self.worst) for account in self.accounts]

    def settlement(self, actual: int) -> list[Bucket]:
        """
        The settle buckets of the request costing *actual*: two per
        account, the hold then the spent counter.
        """
        buckets: list[Bucket] = []
        for account in self.accounts:
            buckets.extend(account.settlement(self.worst, actual))
        return buckets
