"""
Every console page route, made concrete: tests parametrised over these
cover a new page without more code.
"""

from __future__ import annotations

from zerfoo_cloud.http.console._registry import PAGES

#: What each path parameter is replaced by.
SAMPLE_PARAMS = {"key_id": "k-0123456789abcdef", "month": "2026-11"}


def concrete(route: str, tenant: str) -> str:
    """
    *route* with its ``{tenant}`` and other parameters filled in.
    """
    return route.format(tenant=tenant, **SAMPLE_PARAMS)


def routes(area: str, method: str) -> list[str]:
    """
    The routes of every page of *area* (``"tenant"``, ``"operator"``) that
    answers *method*.
    """
    return [
        page.route()
        for page in PAGES
        if page.area == area
        and (page.get if method == "GET" else page.post) is not None
    ]


def tenant_routes(method: str) -> list[str]:
    """
    The routes of every tenant page that answers *method*.
    """
    return routes("tenant", method)


def operator_routes(method: str) -> list[str]:
    """
    The routes of every operator page that answers *method*.
    """
    return routes("operator", method)
