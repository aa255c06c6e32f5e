"""
The headers every console response carries: a strict Content Security
Policy (no inline script or style anywhere), no framing, no sniffing, no
referrer outside the site, and (for anything but the static files) no
caching.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.responses import Response

__all__ = ["CONTENT_SECURITY_POLICY", "NO_STORE", "STATIC_CACHE", "secure"]

#: The Content-Security-Policy of every console response.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'"
)
#: The Cache-Control of pages and downloads: they hold a tenant's data.
NO_STORE = "no-store"
#: The Cache-Control of the static files (an hour; they carry no data).
STATIC_CACHE = "public, max-age=3600"

_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def secure(response: Response, *, cache: str = NO_STORE) -> Response:
    """
    Set the console's security headers and *cache* on *response*; return it.
    """
    for name, value in _HEADERS.items():
        response.headers[name] = value
    response.headers["cache-control"] = cache
    return response
