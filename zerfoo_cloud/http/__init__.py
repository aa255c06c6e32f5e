"""
The HTTP layer: ASGI and WSGI apps and middleware around the core.

`zerfoo_cloud.http.admin.AdminAPI` serves the admin API and SAML login for
tenant admins.
"""

from __future__ import annotations
