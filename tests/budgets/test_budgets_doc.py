"""
The spend budget section of docs/billing.md shows what the code does: its
Python block prints what its comments say, and its refusal is the one the
server sends.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.pricing._support import printed_and_promised
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
    printed, promised = printed_and_promised(code, ROOT)
    assert printed == promised


def test_the_refusal_shown_is_the_one_sent() -> None:
    shown = re.search(r'```text\n(\{"error".*?)\n```', SECTION, flags=re.DOTALL)
    assert shown is not None
    sent = error_response(
        BudgetExceededError("acme", None, "month", "2026-12-01T00:00:00+01:00", 10.0),
        [],
    )
    assert json.loads(sent.body) == json.loads(shown.group(1))
