"""
Helpers of the pricing tests: one-line refusals and price files on disk.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.pricing import ModelPrice


def refused(
    call: Callable[[], object], says: str, field: str | None = None
) -> InvalidConfigError:
    """
    Return the `InvalidConfigError` *call* raises, checking that its message
    matches *says*, is one short line, and (when given) names *field*.
    """
    with pytest.raises(InvalidConfigError, match=says) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    assert len(message) < 400
    if field is not None:
        assert caught.value.field == field
    return caught.value


def toml_file(folder: Path, text: str) -> Path:
    """Write *text* as ``prices.toml`` in *folder* and return its path."""
    path = folder / "prices.toml"
    path.write_text(text, encoding="utf-8")
    return path


def price_from(when: datetime, input_rate: str, output_rate: str) -> ModelPrice:
    """A price taking effect at *when*: *input_rate* and *output_rate* per million tokens."""
    return ModelPrice.from_mapping(
        {"effective_from": when.isoformat(), "input": input_rate, "output": output_rate}
    )


class Clock:
    """A settable clock (Unix seconds)."""

    def __init__(self, when: datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, when: datetime) -> None:
        """Move to *when*."""
        self.now = when.timestamp()


def printed_and_promised(code: str, cwd: Path) -> tuple[list[str], list[str]]:
    """
    Run the Python block *code* of a docs page in *cwd*; return the lines it
    printed and those its ``print(...)  # ...`` comments promise.
    """
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    promised = [
        line.split("# ", 1)[1].split(" (")[0]
        for line in code.splitlines()
        if line.lstrip().startswith("print(")
    ]
    return done.stdout.splitlines(), promised
