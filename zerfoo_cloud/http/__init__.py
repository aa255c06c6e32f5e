"""
The HTTP layer of zerfoo-cloud.

`zerfoo_cloud.http.proxy.UpstreamProxy` forwards requests to a remote
OpenAI-compatible server. See ``docs/proxy.md``.
`zerfoo_cloud.http.admin.AdminAPI` serves the admin API and SAML login for
tenant admins. See ``docs/admin.md``.
"""

from __future__ import annotations
