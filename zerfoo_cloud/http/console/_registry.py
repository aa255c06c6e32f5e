"""
Every console page, in navigation order.

**Adding a page.** Write a module ``_<name>_page.py`` in this package with
a handler per method (``def handler(request: PageRequest) -> Response``,
usually ``return request.render("<name>.html", ...)``) and
``PAGES = (Page("/<path>", "<Title>", get=handler, nav="<Label>"),)``; put
its template in ``templates/`` (extending ``base.html``, every element a
test uses marked with ``data-testid``); import the module below and add
its ``PAGES`` to `TENANT_PAGES` or `OPERATOR_PAGES`. The console then
routes it, checks session, tenant, role and CSRF before the handler runs,
and tests/console/test_console_access.py covers it (cross-tenant refusal,
headers, viewer POSTs) without more code.
"""

from __future__ import annotations

from zerfoo_cloud.http.console import (
    _audit_page,
    _invoices_page,
    _keys_page,
    _operator_page,
    _overview_page,
    _usage_page,
)

__all__ = ["OPERATOR_PAGES", "PAGES", "TENANT_PAGES"]

#: The pages of one tenant, under ``/console/t/{tenant}``.
TENANT_PAGES = (
    *_overview_page.PAGES,
    *_usage_page.PAGES,
    *_keys_page.PAGES,
    *_audit_page.PAGES,
    *_invoices_page.PAGES,
)

#: The operators' pages, under ``/console/operator``.
OPERATOR_PAGES = (*_operator_page.PAGES,)

#: Every page.
PAGES = (*TENANT_PAGES, *OPERATOR_PAGES)
