"""
Reading a price file, JSON or TOML, within limits and without floats.

`read_price_file` returns the file's data for `PriceTable.from_mapping`.
Numbers are never made floats: a JSON number, and a TOML float, reach the
table as their literal text (`NumberText`), which `parse_micros` reads like
a quoted amount, so ``0.15`` and ``"0.15"`` mean the same exact price. The
file is refused whole, with one line naming the path and the problem, when
it is too large (`MAX_PRICE_FILE_BYTES`), not UTF-8, not JSON or TOML,
nested too deep, repeats a key, or holds ``NaN`` or ``Infinity``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NoReturn

import tomllib

from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.pricing._short import short

__all__ = ["MAX_PRICE_FILE_BYTES", "NumberText", "read_price_file"]

#: The largest price file read: 4 MiB, room for tens of thousands of prices.
MAX_PRICE_FILE_BYTES = 4 * 1024 * 1024


class NumberText(str):
    """
    The literal text of a number in a price file (``0.15``, ``1e3``),
    kept as text so that no float ever holds a price.

    .. versionadded:: 0.1.0
    """

    __slots__ = ()


class _FileError(Exception):
    """A problem with a price file; `read_price_file` words it, path first."""


def _no_constant(name: str) -> NoReturn:
    msg = f"{name} is not a number a price file may hold"
    raise _FileError(msg)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            msg = f"the key {short(key)} appears twice in one object"
            raise _FileError(msg)
        found[key] = value
    return found


def _parse_json(text: str) -> Any:
    try:
        return json.loads(
            text,
            parse_float=NumberText,
            parse_int=NumberText,
            parse_constant=_no_constant,
            object_pairs_hook=_object,
        )
    except json.JSONDecodeError as exc:
        msg = f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        raise _FileError(msg) from None


def _parse_toml(text: str) -> Any:
    try:
        return tomllib.loads(text, parse_float=NumberText)
    except ValueError as exc:  # TOMLDecodeError, or an integer too long to read
        msg = f"not TOML: {str(exc).splitlines()[0][:200]}"
        raise _FileError(msg) from None


_PARSERS = {".json": _parse_json, ".toml": _parse_toml}


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_PRICE_FILE_BYTES + 1)
    except OSError as exc:
        msg = f"cannot read it: {exc.strerror or exc}"
        raise _FileError(msg) from None
    if len(data) > MAX_PRICE_FILE_BYTES:
        msg = f"larger than {MAX_PRICE_FILE_BYTES} bytes"
        raise _FileError(msg)
    return data


def _load(path: Path) -> Any:
    parse = _PARSERS.get(path.suffix.lower())
    if parse is None:
        msg = "a price file's name ends in .json or .toml"
        raise _FileError(msg)
    data = _read(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        msg = "not UTF-8 text"
        raise _FileError(msg) from None
    try:
        return parse(text)
    except (RecursionError, MemoryError):
        msg = "nested too deep to be a price file"
        raise _FileError(msg) from None


def read_price_file(path: str | os.PathLike[str]) -> Any:
    """
    Return the data of the price file at *path*, parsed as JSON or TOML by
    its suffix (``.json``, ``.toml``), numbers as `NumberText`.

    Raises:
        InvalidConfigError: the file cannot be read, is larger than
            `MAX_PRICE_FILE_BYTES`, is not UTF-8 text in its format, nests
            too deep, repeats a key or holds ``NaN`` or ``Infinity``; one
            line, starting with *path*, ``field`` ``"path"``.

    .. versionadded:: 0.1.0
    """
    try:
        return _load(Path(path))
    except _FileError as exc:
        msg = f"{os.fspath(path)}: {exc}"
        raise InvalidConfigError(msg, field="path") from None
