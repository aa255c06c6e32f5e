"""
The body of every error zerfoo-cloud answers with, in OpenAI's shape.

``{"error": {"message", "type", "param", "code"}}`` (plus ``request_id``
when the request has one): the inference path, the proxy, the admin API, the
metrics endpoint and the server's head-size guard all build it here.
"""

from __future__ import annotations

import json

__all__ = ["SERVER_ERROR_MESSAGE", "openai_error_body"]

#: The message of a failure that is not the client's (no internals leak).
SERVER_ERROR_MESSAGE = "The server had an error while processing your request."


def openai_error_body(
    message: str,
    kind: str,
    code: str | None,
    *,
    param: str | None = None,
    request_id: str | None = None,
) -> bytes:
    """
    The JSON bytes of an OpenAI error: *message*, ``type`` *kind*, *code*
    and *param*, and ``request_id`` only when *request_id* is given.
    """
    error: dict[str, str | None] = {
        "message": message,
        "type": kind,
        "param": param,
        "code": code,
    }
    if request_id is not None:
        error["request_id"] = request_id
    return json.dumps({"error": error}).encode()
