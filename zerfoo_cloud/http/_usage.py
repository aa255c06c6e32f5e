"""
The token use of a response, and where an app reports it.

`Usage` is what the middleware bills; `usage_from_mapping` reads it out of an
OpenAI ``usage`` object; `UsageSlot` is the per-request place where an app
reports it with `report_usage` (ASGI: ``scope["state"]["zerfoo_cloud.usage"]``;
WSGI: ``environ["zerfoo_cloud.usage"]``), the most trusted source. The other
sources, the response body, are read by `zerfoo_cloud.http._response_meter`.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from zerfoo_cloud.errors import InvalidConfigError

__all__ = [
    "TENANT_KEY",
    "USAGE_KEY",
    "Usage",
    "UsageSlot",
    "report_usage",
    "usage_from_mapping",
]

#: The key of the usage slot in ``scope["state"]`` (ASGI) or in the environ (WSGI).
USAGE_KEY = "zerfoo_cloud.usage"
#: The key under which `CloudMiddleware` tells inner middleware the tenant id.
TENANT_KEY = "zerfoo_cloud.tenant_id"


@attrs.frozen
class Usage:
    """
    The token use of one response.

    *source* says where it came from: ``"reported"`` (`report_usage`),
    ``"json"``, ``"sse"`` or ``"estimate"``.

    .. versionadded:: 0.1.0
    """

    prompt_tokens: int
    completion_tokens: int
    source: str = "reported"

    @property
    def total_tokens(self) -> int:
        """
        Prompt plus completion tokens.
        """
        return self.prompt_tokens + self.completion_tokens


def _count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def usage_from_mapping(value: object) -> tuple[int, int] | None:
    """
    Read ``(prompt_tokens, completion_tokens)`` from an OpenAI ``usage`` object.

    Accepts the chat/completions form (``prompt_tokens``,
    ``completion_tokens``), the embeddings form (``prompt_tokens``,
    ``total_tokens``) and the responses form (``input_tokens``,
    ``output_tokens``). Returns ``None`` for anything else, including negative
    or non-integer counts.

    .. versionadded:: 0.1.0
    """
    if not isinstance(value, Mapping):
        return None
    prompt = _count(value.get("prompt_tokens"))
    completion = _count(value.get("completion_tokens"))
    if prompt is None and completion is None:
        prompt = _count(value.get("input_tokens"))
        completion = _count(value.get("output_tokens"))
    if prompt is None:
        return None
    if completion is None:
        total = _count(value.get("total_tokens"))
        completion = max(0, total - prompt) if total is not None else 0
    return prompt, completion


def _check_counts(prompt_tokens: object, completion_tokens: object) -> None:
    for name, value in (
        ("prompt_tokens", prompt_tokens),
        ("completion_tokens", completion_tokens),
    ):
        if _count(value) is None:
            msg = f"{name} must be a non-negative integer, not {value!r}"
            raise InvalidConfigError(msg, field=name)


class UsageSlot:
    """
    The per-request place where an app reports its token use.

    The middleware puts one in every request (see `USAGE_KEY`); apps fill it
    through `report_usage`.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("completion_tokens", "prompt_tokens", "reported")

    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.reported = False

    def __repr__(self) -> str:
        return (
            f"<UsageSlot reported={self.reported} prompt_tokens={self.prompt_tokens}"
            f" completion_tokens={self.completion_tokens}>"
        )

    def set(self, prompt_tokens: int, completion_tokens: int) -> None:
        """
        Record the counts; a later call replaces an earlier one.

        Raises:
            InvalidConfigError: a count is negative or not an integer.
        """
        _check_counts(prompt_tokens, completion_tokens)
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.reported = True

    def get(self) -> Usage | None:
        """
        The reported usage, or ``None`` if the app reported nothing.
        """
        if not self.reported:
            return None
        return Usage(self.prompt_tokens, self.completion_tokens, "reported")


def _slot_of(target: object) -> UsageSlot | None:
    if isinstance(target, Mapping):
        slot = target.get(USAGE_KEY)
        if slot is None:
            state = target.get("state")
            if isinstance(state, Mapping):
                slot = state.get(USAGE_KEY)
        return slot if isinstance(slot, UsageSlot) else None
    for name in ("scope", "environ"):
        inner = getattr(target, name, None)
        if isinstance(inner, Mapping):
            return _slot_of(inner)
    return None


def report_usage(target: object, prompt_tokens: int, completion_tokens: int) -> bool:
    """
    Report the token use of the current request to the wrapping middleware.

    This is the most trusted source of usage: it wins over the response's
    ``usage`` and covers what the response cannot show (a stream cut short
    by a client that went away). Call it before the response ends, or in a
    ``finally`` block of the generator that streams it.

    Args:
        target: the ASGI *scope*, the WSGI *environ*, or a framework request
            object that has either as ``.scope`` (Starlette, FastAPI) or
            ``.environ`` (Flask, Werkzeug).
        prompt_tokens: tokens read.
        completion_tokens: tokens generated.

    Returns:
        ``True`` if a middleware took the report, ``False`` when the app runs
        without one (the call is then harmless).

    Raises:
        InvalidConfigError: a count is negative or not an integer.

    .. versionadded:: 0.1.0
    """
    _check_counts(prompt_tokens, completion_tokens)
    slot = _slot_of(target)
    if slot is None:
        return False
    slot.set(prompt_tokens, completion_tokens)
    return True
