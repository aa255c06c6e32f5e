"""
The client's own ``x-request-id``, kept as a correlation id
(`client_request_id`); the ids the service gives come from
`zerfoo_cloud.metering.new_request_id`.
"""

from __future__ import annotations

from zerfoo_cloud.metering import MAX_REQUEST_ID_LENGTH

__all__ = ["client_request_id"]


def client_request_id(value: str | bytes | None) -> str | None:
    """
    The client's own ``x-request-id``, kept as a correlation id: 1 to
    `zerfoo_cloud.metering.MAX_REQUEST_ID_LENGTH` visible ASCII characters,
    else ``None`` (dropped). It is logged with the request, never used as
    its id.

    .. versionadded:: 0.1.0
    """
    if not value or len(value) > MAX_REQUEST_ID_LENGTH:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if not (text.isascii() and text.isprintable()) or " " in text:
        return None
    return text
