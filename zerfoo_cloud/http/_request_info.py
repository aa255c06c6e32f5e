"""
What the policy reads from a request body: `RequestInfo`.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["RequestInfo"]


class RequestInfo(NamedTuple):
    """
    What the policy reads from a request body.

    Attributes:
        model: the ``model`` member ("" when absent).
        prompt_tokens: the prompt estimate.
        reserve: tokens to pre-authorise (prompt estimate plus the completion
            allowance).
        stream: the request asks for a server-sent event stream.
        drop_usage_only: ``stream_options.include_usage`` was added by the
            middleware, so the usage-only chunk must not reach the client.
        body: the body to give the app (rewritten when *drop_usage_only*).
        rewritten: *body* differs from what the client sent.
        mangled: the request's model name was too long or not valid text,
            and *model* is `billable_model` of it (such a name is never
            in an allow list).
        default_model: the body names no model and the app chooses one
            (moderations); refused for a tenant with an allow list.

    .. versionadded:: 0.1.0
    """

    model: str = ""
    prompt_tokens: int = 0
    reserve: int = 0
    stream: bool = False
    drop_usage_only: bool = False
    body: bytes = b""
    rewritten: bool = False
    mangled: bool = False
    default_model: bool = False
