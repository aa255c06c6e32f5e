"""
The tenant's audit log, ``/console/t/{tenant}/audit``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zerfoo_cloud.http.console._pages import Page

if TYPE_CHECKING:
    from starlette.responses import Response

    from zerfoo_cloud.http.console._pages import PageRequest

__all__ = ["PAGES"]


def audit_log(request: PageRequest) -> Response:
    """
    ``GET``: the tenant's audit entries.
    """
    return request.render("audit.html")


#: The audit log page.
PAGES = (Page("/audit", "Audit log", get=audit_log, nav="Audit log"),)
