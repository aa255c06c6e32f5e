"""
The event loop and the HTTP parser ``zerfoo-cloud serve`` runs uvicorn on.

``auto`` picks the fastest one installed: uvloop over asyncio's own loop,
httptools over h11 (both come with the ``server`` extra where they build).
Naming one that is not installed is an error, never a silent fallback.
"""

from __future__ import annotations

import importlib.util
from typing import Final, Literal

from zerfoo_cloud._http_limits import Parser
from zerfoo_cloud.errors import MissingExtraError

__all__ = ["LOOP_CHOICES", "PARSER_CHOICES", "Loop", "resolve_loop", "resolve_parser"]

#: The event loops uvicorn runs on.
Loop = Literal["asyncio", "uvloop"]

#: What ``serve --loop`` accepts.
LOOP_CHOICES: Final = ("auto", "asyncio", "uvloop")
#: What ``serve --http`` accepts.
PARSER_CHOICES: Final = ("auto", "h11", "httptools")


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def resolve_loop(choice: str) -> Loop:
    """
    The event loop for ``serve --loop`` *choice*.

    Returns:
        ``"uvloop"`` for ``uvloop``, or for ``auto`` when uvloop is
        installed; else ``"asyncio"``.

    Raises:
        MissingExtraError: ``uvloop`` was asked for and is not installed.
        ValueError: *choice* is not one of `LOOP_CHOICES`.
    """
    if choice == "asyncio":
        return "asyncio"
    if choice == "uvloop":
        if not _installed("uvloop"):
            raise MissingExtraError("server", "serve --loop uvloop", "uvloop")
        return "uvloop"
    if choice == "auto":
        return "uvloop" if _installed("uvloop") else "asyncio"
    msg = f"loop must be one of {', '.join(LOOP_CHOICES)}, not {choice!r}"
    raise ValueError(msg)


def resolve_parser(choice: str) -> Parser:
    """
    The HTTP parser for ``serve --http`` *choice*.

    Returns:
        ``"httptools"`` for ``httptools``, or for ``auto`` when httptools is
        installed; else ``"h11"``.

    Raises:
        MissingExtraError: ``httptools`` was asked for and is not installed.
        ValueError: *choice* is not one of `PARSER_CHOICES`.
    """
    if choice == "h11":
        return "h11"
    if choice == "httptools":
        if not _installed("httptools"):
            raise MissingExtraError("server", "serve --http httptools", "httptools")
        return "httptools"
    if choice == "auto":
        return "httptools" if _installed("httptools") else "h11"
    msg = f"http must be one of {', '.join(PARSER_CHOICES)}, not {choice!r}"
    raise ValueError(msg)
