"""
The event loop and the HTTP parser ``zerfoo-cloud serve`` runs uvicorn on,
and how its workers' garbage collector is tuned.

``auto``, the default of both, picks the fastest one installed: uvloop
over asyncio's own loop, httptools over h11 (the ``server`` extra installs
both, uvloop where it has a build). Naming one that is not installed is an
error, never a silent fallback.
"""

from __future__ import annotations

import gc
import importlib.util
from typing import Final, Literal

from zerfoo_cloud._http_limits import Parser
from zerfoo_cloud.errors import MissingExtraError

__all__ = [
    "GC_THRESHOLDS",
    "LOOP_CHOICES",
    "PARSER_CHOICES",
    "Loop",
    "resolve_loop",
    "resolve_parser",
    "tune_gc",
]

#: The event loops uvicorn runs on.
Loop = Literal["asyncio", "uvloop"]

#: What ``serve --loop`` accepts.
LOOP_CHOICES: Final = ("auto", "asyncio", "uvloop")
#: What ``serve --http`` accepts.
PARSER_CHOICES: Final = ("auto", "h11", "httptools")
#: The collector's thresholds in a serving worker (Python's are 700, 10, 10).
GC_THRESHOLDS: Final = (20_000, 50, 100)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _resolve(option: str, choice: str, plain: str, fast: str) -> str:
    # *fast* when asked for or, with ``auto``, when installed; else *plain*.
    if choice == plain:
        return plain
    if choice == fast:
        if not _installed(fast):
            raise MissingExtraError("server", f"serve --{option} {fast}", fast)
        return fast
    if choice == "auto":
        return fast if _installed(fast) else plain
    msg = f"{option} must be one of auto, {plain}, {fast}, not {choice!r}"
    raise ValueError(msg)


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
    return (
        "uvloop"
        if _resolve("loop", choice, "asyncio", "uvloop") == "uvloop"
        else "asyncio"
    )


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
    return (
        "httptools"
        if _resolve("http", choice, "h11", "httptools") == "httptools"
        else "h11"
    )


def tune_gc() -> None:
    """
    Tune this process's garbage collector for serving, once its app is built.

    A request allocates many short-lived objects that reference counting
    frees; at Python's default thresholds the collector still runs every
    few requests and walks every object the worker holds. `GC_THRESHOLDS`
    make collections rarer (cyclic garbage still gets collected), and
    ``gc.freeze`` moves what was built at startup out of their way.
    ``serve --upstream`` measured about 8 % less CPU time per request so.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
