"""
The console's cookies: the session (``zc_session``, shared with the admin
API), always ``HttpOnly``, ``SameSite=Lax``, ``Path=/`` and, unless turned
off for plain-HTTP development on the loopback address, ``Secure``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from zerfoo_cloud.http.admin._sso import SESSION_COOKIE

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from zerfoo_cloud.http.admin._sessions import Session
    from zerfoo_cloud.http.console._services import ConsoleServices

__all__ = ["LOOPBACK_HOSTS", "clear_session", "insecure_refused", "set_session"]

#: The hosts on which cookies may be sent without ``Secure`` (when the
#: console is told to): plain HTTP on this machine only.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


def insecure_refused(services: ConsoleServices, request: Request) -> bool:
    """
    Whether a cookie may not be set for *request*: cookies without
    ``Secure`` are only for the loopback address.
    """
    if services.secure_cookies:
        return False
    host = request.headers.get("host", "").lower()
    name = host.rpartition(":")[0] if host.count(":") == 1 or "]:" in host else host
    return name not in LOOPBACK_HOSTS


def set_session(
    services: ConsoleServices, response: Response, token: str, session: Session
) -> None:
    """
    Set the session cookie to *token*, kept until the session's absolute
    end (the token itself ends sooner when idle).
    """
    max_age = max(1, math.ceil(session.absolute_expires_at - services.clock()))
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        path="/",
        secure=services.secure_cookies,
        httponly=True,
        samesite="lax",
    )


def clear_session(services: ConsoleServices, response: Response) -> None:
    """
    Clear the session cookie.
    """
    response.set_cookie(
        SESSION_COOKIE,
        "",
        max_age=0,
        path="/",
        secure=services.secure_cookies,
        httponly=True,
        samesite="lax",
    )
