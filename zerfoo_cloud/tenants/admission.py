"""
Admission: the outcome of asking for one request and its token reservation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from zerfoo_cloud.limits import Decision

if TYPE_CHECKING:
    from zerfoo_cloud.budgets.accounts import BudgetAccount

__all__ = ["Admission"]


@attrs.frozen
class Admission:
    """
    The outcome of `Tenant.admit`: one request and its token reservation.

    ``allowed`` is true when both were granted; otherwise nothing was taken
    from either bucket, and the refused decision(s) say when to retry.
    ``requests`` and ``tokens`` are ``None`` for unlimited quotas.
    ``concurrency_refused`` is true when `Tenant.begin_request` found every
    concurrency slot taken (the decisions then report the quotas as they
    are). ``refused_by_key`` is true when the limit that refused is the
    API key's own rather than the tenant's (each decision is then the
    tighter of the two). ``budget`` is the spend budget account that
    refused (``refused_by`` ``"budget"``), or ``None``.

    .. versionadded:: 0.1.0
    """

    allowed: bool
    requests: Decision | None
    tokens: Decision | None
    concurrency_refused: bool = False
    refused_by_key: bool = False
    budget: BudgetAccount | None = None

    @property
    def retry_after(self) -> float:
        """
        Seconds until the same request would pass (0.0 if it passed).
        """
        waits = [
            d.retry_after
            for d in (self.requests, self.tokens)
            if d is not None and not d.allowed
        ]
        return max(waits, default=0.0)

    @property
    def refused_by(self) -> str | None:
        """
        ``"concurrency"``, ``"requests"``, ``"tokens"`` or ``"budget"``: the
        limit that refused, or ``None``.
        """
        if self.concurrency_refused:
            return "concurrency"
        if self.requests is not None and not self.requests.allowed:
            return "requests"
        if self.tokens is not None and not self.tokens.allowed:
            return "tokens"
        if self.budget is not None:
            return "budget"
        return None
