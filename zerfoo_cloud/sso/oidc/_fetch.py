"""
Bounded HTTPS calls to an OpenID provider: a timeout on the whole call, a
size limit on the answer, no redirects, and errors that name the endpoint
but never a token, a code or a secret.
"""

from __future__ import annotations

import ipaddress
import json
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

import httpx

from zerfoo_cloud.errors import OIDCError

__all__ = ["check_url", "fetch_json"]

_LOOPBACK_NAMES = ("localhost",)


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: object, what: str) -> str:
    """
    *url* if it is an absolute ``https://`` URL (``http://`` only to a
    loopback address, for local test providers), without a fragment.

    Raises:
        OIDCError: ``oidc_discovery`` naming *what* otherwise.
    """
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    if (
        parts is None
        or not parts.hostname
        or parts.fragment
        or not (
            parts.scheme == "https"
            or (parts.scheme == "http" and _is_loopback(parts.hostname))
        )
    ):
        msg = f"the {what} must be an https:// URL, not {url!r}"
        raise OIDCError(msg, code="oidc_discovery")
    return str(url)


def fetch_json(
    url: str,
    what: str,
    *,
    timeout: float,
    max_bytes: int,
    form: Mapping[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> tuple[int, Any]:
    """
    GET *url* (POST *form* when given) and return the status and the JSON
    body, read within *timeout* seconds in all and at most *max_bytes*
    bytes. Blocks: call it in a worker thread.

    Raises:
        OIDCError: ``oidc_timeout``, ``oidc_too_large``, ``oidc_network``
            (connection failed, a redirect, or a body that is not JSON);
            the message names *what* (the endpoint), never a secret.
    """
    deadline = time.monotonic() + timeout
    # Uncompressed answers only, so the size limit is the size read.
    headers = {"accept": "application/json", "accept-encoding": "identity"}
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False) as client,
            client.stream(
                "POST" if form is not None else "GET",
                url,
                data=dict(form) if form is not None else None,
                auth=auth,
                headers=headers,
            ) as response,
        ):
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise _too_large(what, max_bytes)
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise _too_large(what, max_bytes)
                if time.monotonic() > deadline:
                    raise _timed_out(what, timeout)
            status = response.status_code
    except httpx.TimeoutException:
        raise _timed_out(what, timeout) from None
    except httpx.HTTPError as exc:
        msg = f"the {what} cannot be reached: {type(exc).__name__}"
        raise OIDCError(msg, code="oidc_network") from None
    if 300 <= status < 400:  # noqa: PLR2004 - the redirect range
        msg = f"the {what} answered with a redirect ({status}); none is followed"
        raise OIDCError(msg, code="oidc_network")
    try:
        return status, json.loads(bytes(body))
    except (UnicodeDecodeError, json.JSONDecodeError):
        msg = f"the {what} did not answer JSON (HTTP {status})"
        raise OIDCError(msg, code="oidc_network") from None


def _too_large(what: str, max_bytes: int) -> OIDCError:
    msg = f"the {what}'s answer is larger than {max_bytes} bytes"
    return OIDCError(msg, code="oidc_too_large")


def _timed_out(what: str, timeout: float) -> OIDCError:
    msg = f"the {what} did not answer within {timeout:g} seconds"
    return OIDCError(msg, code="oidc_timeout")
