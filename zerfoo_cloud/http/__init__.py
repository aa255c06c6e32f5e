"""
The HTTP layer of zerfoo-cloud: wrap any OpenAI-compatible ASGI or WSGI app.

`CloudServer` adds API keys, limits, metering and audit to an app;
`billing_middleware` adds metering alone; apps report exact token use with
`report_usage`. See ``docs/http.md``.

`zerfoo_cloud.http.proxy.UpstreamProxy` forwards requests to a remote
OpenAI-compatible server, and `zerfoo_cloud.http.pooled_proxy.PooledProxy`
to a pool of them, routed by model. See ``docs/proxy.md``.
`zerfoo_cloud.http.admin.AdminAPI` serves the admin API and SAML login for
tenant admins, on Starlette (the ``web`` extra); the modules here never
import it. See ``docs/admin.md``.
"""

from __future__ import annotations

from zerfoo_cloud.http._errors import status_for
from zerfoo_cloud.http._policy import (
    PolicyOptions,
    ResourcePinner,
    format_duration,
)
from zerfoo_cloud.http._server import CloudServer, billing_middleware, detect_interface
from zerfoo_cloud.http._usage import USAGE_KEY, Usage, UsageSlot, report_usage
from zerfoo_cloud.http.asgi import BillingMiddleware, CloudMiddleware
from zerfoo_cloud.http.wsgi import WSGIBillingMiddleware, WSGICloudMiddleware

__all__ = [
    "USAGE_KEY",
    "BillingMiddleware",
    "CloudMiddleware",
    "CloudServer",
    "PolicyOptions",
    "ResourcePinner",
    "Usage",
    "UsageSlot",
    "WSGIBillingMiddleware",
    "WSGICloudMiddleware",
    "billing_middleware",
    "detect_interface",
    "format_duration",
    "report_usage",
    "status_for",
]
