"""
The tenant's invoices, ``/console/t/{tenant}/invoices``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zerfoo_cloud.http.console._pages import Page

if TYPE_CHECKING:
    from starlette.responses import Response

    from zerfoo_cloud.http.console._pages import PageRequest

__all__ = ["PAGES"]


def invoices(request: PageRequest) -> Response:
    """
    ``GET``: one row per month.
    """
    return request.render("invoices.html")


#: The invoices page.
PAGES = (Page("/invoices", "Invoices", get=invoices, nav="Invoices"),)
