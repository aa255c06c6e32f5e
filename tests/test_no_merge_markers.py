"""
No tracked text file keeps a merge conflict's markers.

A conflict resolved by hand can leave ``<<<<<<<`` and ``>>>>>>>`` lines in a
page that no other test reads as code (Markdown, the changelog).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARKERS = ("<" * 7 + " ", ">" * 7 + " ")


def _tracked() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: install git or run from a clone")
    return [ROOT / name for name in listed.decode().split("\0") if name]


def test_no_tracked_file_has_conflict_markers() -> None:
    """Every line of every tracked text file is free of conflict markers."""
    found = []
    for path in _tracked():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if line.startswith(MARKERS):
                found.append(f"{path.relative_to(ROOT)}:{number}")
    assert found == []
