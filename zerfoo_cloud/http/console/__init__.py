"""
The web console: server-rendered pages for tenant admins, viewers and
operators, on the admin API's Starlette app (needs the ``web`` extra).

`mount_console` adds it to a `zerfoo_cloud.http.admin.AdminAPI` that has
a `zerfoo_cloud.http.admin.SessionSigner`: ``/console/login`` (single
sign-on links per tenant, and an admin-key form for operators),
``/console/logout``, a tenant's pages under ``/console/t/{tenant}/``
(overview, keys, audit log, invoices), the operators' under
``/console/operator/``, and the static files under ``/console/static/``.

Every page checks the session (signed, HttpOnly cookie with idle and
absolute expiry), the tenant (a tenant's people see only theirs) and the
role (viewers only read), every form carries a CSRF token bound to the
session, and every response carries a strict Content Security Policy.
See ``docs/console.md``; `_registry` says how to add a page.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from zerfoo_cloud._extras import needs_extra

with needs_extra("web", "the web console"):
    from zerfoo_cloud.http.console._formatting import (
        money,
        relative_time,
        thousands,
        utc_text,
    )
    from zerfoo_cloud.http.console._mount import mount_console
    from zerfoo_cloud.http.console._security_headers import CONTENT_SECURITY_POLICY
    from zerfoo_cloud.http.console._services import SignInLink

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "SignInLink",
    "money",
    "mount_console",
    "relative_time",
    "thousands",
    "utc_text",
]
