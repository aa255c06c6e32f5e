"""
The tenant's overview page, ``/console/t/{tenant}/``: its limits and keys
at a glance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zerfoo_cloud.http.console._pages import Page

if TYPE_CHECKING:
    from starlette.responses import Response

    from zerfoo_cloud.http.console._pages import PageRequest

__all__ = ["PAGES"]


def overview(request: PageRequest) -> Response:
    """
    The tenant's limits and how many of its keys work.
    """
    assert request.tenant_id is not None
    record = request.services.tenants.get(request.tenant_id).record
    working = sum(1 for key in record.keys if key.usable(request.now))
    return request.render("overview.html", tenant=record, working_keys=working)


#: The overview page.
PAGES = (Page("/", "Overview", get=overview, nav="Overview"),)
