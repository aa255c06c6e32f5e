"""
The prompt estimate: the tokens a request body's prompt is taken to hold
before the app reports its real use.

``ceil(characters / 4)`` of the text of ``messages`` (plus 4 tokens per
message and 3 for the reply), ``prompt`` or ``input`` (strings, lists of
strings, token-id lists: one token per id); non-text message parts count 85
tokens each.
"""

from __future__ import annotations

from typing import Any

__all__ = ["estimate_prompt_tokens"]

_TOKENS_PER_MESSAGE = 4
_TOKENS_PER_REPLY = 3
_TOKENS_PER_NON_TEXT_PART = 85
_CHARS_PER_TOKEN = 4


def _text_chars(value: object) -> tuple[int, int]:
    """Return (characters, extra tokens) of a prompt-like value."""
    chars = extra = 0
    if isinstance(value, str):
        chars = len(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        extra = 1
    elif isinstance(value, list):
        for item in value:
            c, e = _text_chars(item)
            chars += c
            extra += e
    elif isinstance(value, dict):
        text = value.get("text")
        content = value.get("content")
        if isinstance(text, str):
            chars = len(text)
        elif content is not None:
            chars, extra = _text_chars(content)
            extra += _TOKENS_PER_MESSAGE
        else:
            extra = _TOKENS_PER_NON_TEXT_PART
    return chars, extra


def estimate_prompt_tokens(doc: dict[str, Any]) -> int:
    """
    Estimate the prompt tokens of an OpenAI request body (see `zerfoo_cloud.http._estimate`).

    .. versionadded:: 0.1.0
    """
    chars = extra = 0
    messages = doc.get("messages")
    if isinstance(messages, list):
        for message in messages:
            extra += _TOKENS_PER_MESSAGE
            if isinstance(message, dict):
                c, e = _text_chars(message.get("content"))
                chars += c
                extra += e
        extra += _TOKENS_PER_REPLY
    for name in ("prompt", "input"):
        value = doc.get(name)
        if value is not None:
            c, e = _text_chars(value)
            chars += c
            extra += e
    return -(-chars // _CHARS_PER_TOKEN) + extra
