"""
The tenant's audit log, ``/console/t/{tenant}/audit``: newest entries
first, filtered by action, result and a range of UTC days, `PAGE_SIZE` a
page; above them, the result of verifying the whole log's hash chain.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import attrs

from zerfoo_cloud.audit import AuditAction, AuditResult
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.http.admin._inputs import query_fields
from zerfoo_cloud.http.console._pages import Page, PageProblem

if TYPE_CHECKING:
    from starlette.responses import Response

    from zerfoo_cloud.audit import AuditEntry, AuditLogger
    from zerfoo_cloud.http.console._pages import PageRequest

__all__ = ["DEFAULT_DAYS", "MAX_PAGE", "PAGES", "PAGE_SIZE", "ChainStatus"]

#: Entries per page.
PAGE_SIZE = 50
#: The highest page number accepted.
MAX_PAGE = 10_000
#: Without ``since``, the page shows this many days up to ``until``.
DEFAULT_DAYS = 30
_FILTERS = ("action", "result", "since", "until", "page")


@attrs.frozen
class ChainStatus:
    """
    What verifying the audit log's hash chain found, for people.

    Attributes:
        state: ``"intact"``, ``"broken"`` or ``"unchained"`` (the store
            keeps no chain).
        entries: how many entries were checked intact.
        message: the verifier's words (where the chain breaks).
        seq: where it breaks, when it does.
    """

    state: str
    entries: int = 0
    message: str = ""
    seq: int | None = None


def chain_status(audit: AuditLogger) -> ChainStatus:
    """
    Verify the whole log (every tenant's entries: the chain is one).
    """
    try:
        found = audit.verify()
    except InvalidConfigError:
        return ChainStatus("unchained")
    if found.ok:
        return ChainStatus("intact", found.checked)
    return ChainStatus("broken", found.checked, found.message, found.seq)


def _day(text: str, name: str, *, end: bool) -> datetime:
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError as exc:
        msg = f"{name} must be a date like 2026-01-31."
        raise PageProblem(400, msg) from exc
    return day + timedelta(days=1, microseconds=-1) if end else day


def _choice(text: str, name: str, allowed: tuple[str, ...]) -> str:
    if text and text not in allowed:
        msg = f"{name} must be one of {', '.join(allowed)}."
        raise PageProblem(400, msg)
    return text


def audit_log(request: PageRequest) -> Response:
    """
    ``GET [?action=&result=&since=YYYY-MM-DD&until=YYYY-MM-DD&page=N]``.
    """
    assert request.tenant_id is not None
    audit = request.services.audit
    if audit is None:
        return request.render("audit.html", configured=False)
    params = query_fields(request.request, _FILTERS)
    actions = tuple(a.value for a in AuditAction)
    results = tuple(r.value for r in AuditResult)
    action = _choice(params.get("action", ""), "action", actions)
    result = _choice(params.get("result", ""), "result", results)
    today = datetime.fromtimestamp(request.now, timezone.utc).strftime("%Y-%m-%d")
    until_text = params.get("until", "") or today
    until = _day(until_text, "until", end=True)
    default_since = until - timedelta(days=DEFAULT_DAYS - 1)
    since_text = params.get("since", "") or default_since.strftime("%Y-%m-%d")
    since = _day(since_text, "since", end=False)
    page_text = params.get("page", "1")
    if not page_text.isdigit() or not 1 <= int(page_text) <= MAX_PAGE:
        raise PageProblem(400, f"page must be a number from 1 to {MAX_PAGE:,}.")
    page = int(page_text)
    entries: list[AuditEntry] = []
    if since <= until:
        entries = [
            e
            for e in audit.query(request.tenant_id, since, until)
            if (not action or e.action.value == action)
            and (not result or e.result.value == result)
        ]
    entries.reverse()
    shown = entries[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    filters = {
        "action": action,
        "result": result,
        "since": since_text,
        "until": until_text,
    }
    return request.render(
        "audit.html",
        configured=True,
        chain=chain_status(audit),
        entries=shown,
        total=len(entries),
        page=page,
        pages=max(1, -(-len(entries) // PAGE_SIZE)),
        filters=filters,
        actions=actions,
        results=results,
    )


#: The audit log page.
PAGES = (Page("/audit", "Audit log", get=audit_log, nav="Audit log"),)
