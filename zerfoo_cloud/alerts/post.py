"""
`post`: one HTTP POST of a webhook body with the standard library, with a
timeout, its outcome as short text.
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from urllib.parse import urlsplit

__all__ = ["USER_AGENT", "post"]

#: The User-Agent of every delivery.
USER_AGENT = "zerfoo-cloud-webhooks"
#: At most this much of an answer is read.
_MAX_ANSWER = 64 * 1024


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> str:
    """
    POST *body* to *url* with *headers* (and ``content-type:
    application/json``), waiting at most *timeout* seconds for each step;
    return the status code as text (``"200"``), ``"timeout"``, or the name
    of the error that stopped it (``"ConnectionRefusedError"``). Redirects
    are not followed. Never raises for a network failure.
    """
    parts = urlsplit(url)
    kind = (
        http.client.HTTPSConnection
        if parts.scheme == "https"
        else http.client.HTTPConnection
    )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = kind(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={
                "content-type": "application/json",
                "user-agent": USER_AGENT,
                **headers,
            },
        )
        answer = conn.getresponse()
        answer.read(_MAX_ANSWER)
        return str(answer.status)
    except TimeoutError:
        return "timeout"
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return type(exc).__name__
    finally:
        conn.close()
