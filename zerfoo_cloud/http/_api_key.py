"""
API-key extraction: the key a request carries, from ``Authorization:
Bearer`` or ``x-api-key``.
"""

from __future__ import annotations

__all__ = ["api_key_from"]


def api_key_from(
    authorization: str | bytes | None, x_api_key: str | bytes | None
) -> str | None:
    """
    Return the API key of a request, or ``None`` if it has none.

    ``Authorization: Bearer <key>`` (scheme in any case) wins over
    ``x-api-key: <key>``.

    .. versionadded:: 0.1.0
    """
    # The common form, without the general path's tuples and partition.
    if type(authorization) is bytes and authorization[:7] == b"Bearer ":
        key = authorization[7:].decode("latin-1").strip()
        if key:
            return key
    elif type(authorization) is str and authorization[:7] == "Bearer ":
        key = authorization[7:].strip()
        if key:
            return key
    return _api_key_from_any(authorization, x_api_key)


def _api_key_from_any(
    authorization: str | bytes | None, x_api_key: str | bytes | None
) -> str | None:
    for value, bearer in ((authorization, True), (x_api_key, False)):
        if not value:
            continue
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        if bearer:
            scheme, _, rest = text.strip().partition(" ")
            if scheme.lower() != "bearer":
                continue
            text = rest
        text = text.strip()
        if text:
            return text
    return None
