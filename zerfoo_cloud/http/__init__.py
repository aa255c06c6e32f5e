"""
The HTTP layer of zerfoo-cloud.

`zerfoo_cloud.http.proxy.UpstreamProxy` forwards requests to a remote
OpenAI-compatible server. See ``docs/proxy.md``.
"""

from __future__ import annotations
