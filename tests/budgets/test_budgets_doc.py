"""
The spend budget section of docs/billing.md shows what the code does: its
Python block prints what its comments say, and its refusal is the one the
server sends.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from zerfoo_cloud.errors import BudgetExceededError
from zerfoo_cloud.http._errors import error_response

ROOT = Path(__file__).resolve().parents[2]
SECTION = (
    (ROOT / "docs" / "billing.md")
    .read_text(encoding="utf-8")
    .split("## Spend budgets")[1]
)


def test_the_python_block_prints_what_it_says() -> None:
    (code,) = re.findall(r"```python\n(.*?)```", SECTION, flags=re.DOTALL)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
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
    assert done.stdout.splitlines() == promised


def test_the_refusal_shown_is_the_one_sent() -> None:
    shown = re.search(r'```text\n(\{"error".*?)\n```', SECTION, flags=re.DOTALL)
    assert shown is not None
    sent = error_response(
        BudgetExceededError("acme", None, "month", "2026-12-01T00:00:00+01:00", 10.0),
        [],
    )
    assert json.loads(sent.body) == json.loads(shown.group(1))
