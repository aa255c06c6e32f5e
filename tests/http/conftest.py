"""
Fixtures of the HTTP tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.http._support import Stack


@pytest.fixture
def stack(clock: Any) -> Iterator[Stack]:
    """
    A memory stack (tenants, meter, audit logger) on a frozen clock.
    """
    s = Stack(clock=clock)
    yield s
    s.close()
