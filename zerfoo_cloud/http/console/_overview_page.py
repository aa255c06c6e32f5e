"""
The tenant's Overview page, ``/console/t/{tenant}/``: requests, tokens,
spend, errors and 429s today and this month against its limits and spend
budgets, and its keys at a glance; a first request to send when it has no
traffic yet.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from zerfoo_cloud.http.console._overview_data import build_overview
from zerfoo_cloud.http.console._pages import Page
from zerfoo_cloud.http.console._usage_page import usage_meter

if TYPE_CHECKING:
    from starlette.responses import Response

    from zerfoo_cloud.http.console._pages import PageRequest
    from zerfoo_cloud.tenant_records import TenantRecord

__all__ = ["PAGES", "first_request"]


def first_request(base_url: str, record: TenantRecord) -> str:
    """
    A ``curl`` command that sends *record*'s tenant a first chat request
    through *base_url*, the key read from ``$ZC_API_KEY``.
    """
    model = record.model_allow_list[0] if record.model_allow_list else "MODEL"
    body = json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "Hello"}]}
    ).replace("'", "\\u0027")
    return (
        f"curl {base_url.rstrip('/')}/v1/chat/completions \\\n"
        '  -H "Authorization: Bearer $ZC_API_KEY" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f"  -d '{body}'"
    )


def overview(request: PageRequest) -> Response:
    """
    Today's and this month's traffic, limits, budgets and keys.
    """
    assert request.tenant_id is not None
    services = request.services
    meter = usage_meter(request)
    data = None
    if meter is None:
        record = services.tenants.get(request.tenant_id).record
    else:
        data = build_overview(
            request.tenant_id,
            datetime.fromtimestamp(request.now, timezone.utc),
            services.tenants,
            meter,
            services.audit,
        )
        record = data.tenant
    working = sum(1 for key in record.keys if key.usable(request.now))
    return request.render(
        "overview.html",
        tenant=record,
        overview=data,
        working_keys=working,
        curl=first_request(str(request.request.base_url), record),
    )


#: The overview page.
PAGES = (Page("/", "Overview", get=overview, nav="Overview"),)
