"""
The operators' home, ``/console/operator/``: every tenant, each linking to
its pages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zerfoo_cloud.http.console._pages import Page

if TYPE_CHECKING:
    from starlette.responses import Response

    from zerfoo_cloud.http.console._pages import PageRequest

__all__ = ["PAGES"]


def tenants(request: PageRequest) -> Response:
    """
    Every tenant, by id.
    """
    records = sorted(request.services.tenants.records(), key=lambda r: r.id)
    return request.render("operator.html", tenants=records)


#: The operators' pages.
PAGES = (Page("/", "All tenants", get=tenants, area="operator"),)
