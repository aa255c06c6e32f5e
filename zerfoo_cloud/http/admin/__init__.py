"""
The admin API: tenants, keys, usage and audit over HTTP, and SAML login
for tenant admins, on Starlette (needs the ``web`` extra).

`AdminAPI` is an ASGI app serving JSON under ``/admin/`` and the SAML
login endpoints under ``/sso/saml/<tenant>/``. Mount it beside the
inference app (``AdminAPI.handles(path)`` says which paths are its own).
An admin key (only its SHA-256 hash is configured) may do everything; a
tenant admin signed in through the tenant's IdP gets a `SessionSigner`
session (signed by itsdangerous) that may read only its own tenant, its
usage and its audit log, and rotate its own key. Every call is audited;
errors use OpenAI's error shape. See ``docs/admin.md`` and
``docs/openapi.yaml``.

Importing this package without the ``web`` extra (starlette, itsdangerous,
python-multipart) raises `zerfoo_cloud.MissingExtraError` naming it.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from zerfoo_cloud._extras import needs_extra

with needs_extra("web", "the admin API and SSO login"):
    from zerfoo_cloud.http.admin._app import DEFAULT_MAX_BODY, AdminAPI
    from zerfoo_cloud.http.admin._params import (
        DEFAULT_AUDIT_LIMIT,
        DEFAULT_USAGE_DAYS,
        MAX_AUDIT_LIMIT,
    )
    from zerfoo_cloud.http.admin._report_routes import UsageMeter
    from zerfoo_cloud.http.admin._sessions import Session, SessionSigner
    from zerfoo_cloud.http.admin._sso import SESSION_COOKIE

__all__ = [
    "DEFAULT_AUDIT_LIMIT",
    "DEFAULT_MAX_BODY",
    "DEFAULT_USAGE_DAYS",
    "MAX_AUDIT_LIMIT",
    "SESSION_COOKIE",
    "AdminAPI",
    "Session",
    "SessionSigner",
    "UsageMeter",
]
