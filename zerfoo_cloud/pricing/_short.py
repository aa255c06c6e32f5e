"""
How the price checks quote a value they refuse.
"""

from __future__ import annotations

__all__ = ["short"]

#: The longest quotation of a refused value in an error message.
_QUOTE_CHARS = 40


def short(value: object) -> str:
    """
    Return ``repr(value)``, cut to a few dozen characters: a hostile value
    (a megabyte string) must not make a megabyte error message.
    """
    if isinstance(value, (str, bytes)) and len(value) > _QUOTE_CHARS:
        value = value[:_QUOTE_CHARS]
    try:
        text = repr(value)
    except ValueError:  # an integer past Python's limit on digits
        return "an integer too long to print"
    if len(text) <= _QUOTE_CHARS:
        return text
    return text[: _QUOTE_CHARS - 3] + "..."
