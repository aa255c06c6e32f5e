"""
The tenant's Usage page, ``/console/t/{tenant}/usage?from=&to=&split=``:
tokens per day as a chart drawn on the server, the table behind it, and
the same table as CSV (``/console/t/{tenant}/usage.csv``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from markupsafe import Markup
from starlette.responses import Response

from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.http.console._chart import render_usage_chart, series_label
from zerfoo_cloud.http.console._pages import Page, PageProblem
from zerfoo_cloud.http.console._usage_csv import (
    usage_csv,
    usage_csv_filename,
    usage_header,
    usage_table,
)
from zerfoo_cloud.http.console._usage_data import (
    SPLITS,
    UsageReport,
    UsageSource,
    build_usage_report,
    parse_day_range,
    parse_split,
)

if TYPE_CHECKING:
    from zerfoo_cloud.http.console._pages import PageRequest

__all__ = ["PAGES", "usage_meter", "usage_report"]


def usage_meter(request: PageRequest) -> UsageSource | None:
    """
    The meter the usage pages read, or ``None`` when none is configured.
    """
    meter = request.services.meter
    return meter if isinstance(meter, UsageSource) else None


def usage_report(request: PageRequest, meter: UsageSource) -> UsageReport:
    """
    The report the query parameters ``from``, ``to`` and ``split`` ask for.

    Raises:
        PageProblem: 400 with the reason, for a bad parameter.
    """
    assert request.tenant_id is not None
    query = request.request.query_params
    today = datetime.fromtimestamp(request.now, timezone.utc).date()
    try:
        days = parse_day_range(query.get("from"), query.get("to"), today)
        split = parse_split(query.get("split"))
    except InvalidConfigError as exc:
        raise PageProblem(400, str(exc)) from None
    return build_usage_report(
        request.tenant_id, days, split, meter, request.services.audit
    )


def usage(request: PageRequest) -> Response:
    """
    The chart and table of the range asked for (the last 30 days by
    default), split by model or key.
    """
    meter = usage_meter(request)
    if meter is None:
        return request.render("usage.html", report=None)
    report = usage_report(request, meter)
    chart = render_usage_chart(report.tokens_by_day(), report.series, report.split)
    labels = {row.name: series_label(row.name, report.split) for row in report.rows}
    query = f"?from={report.days.first}&to={report.days.last}&split={report.split}"
    return request.render(
        "usage.html",
        report=report,
        chart=Markup(chart),  # noqa: S704 - built by render_usage_chart, every text escaped
        header=usage_header(report.split),
        rows=usage_table(report),
        labels=labels,
        splits=SPLITS,
        csv_url=request.url("/usage.csv") + query,
    )


def usage_download(request: PageRequest) -> Response:
    """
    The table of the Usage page with the same parameters, as a CSV file.
    """
    meter = usage_meter(request)
    if meter is None:
        raise PageProblem(404, "No usage store is configured.")
    report = usage_report(request, meter)
    return Response(
        usage_csv(report).encode(),
        200,
        headers={
            "content-disposition": (
                f'attachment; filename="{usage_csv_filename(report)}"'
            )
        },
        media_type="text/csv; charset=utf-8",
    )


#: The usage pages.
PAGES = (
    Page("/usage", "Usage", get=usage, nav="Usage"),
    Page("/usage.csv", "Usage CSV", get=usage_download),
)
