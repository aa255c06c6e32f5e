"""
Checked by mypy only: the meter satisfies what the admin API needs of it.
"""

from __future__ import annotations

from zerfoo_cloud import TokenMeter
from zerfoo_cloud.http.admin import UsageMeter
from zerfoo_cloud.stores.memory import MemoryBillingStore


def check() -> None:
    """
    Assign a TokenMeter to the UsageMeter protocol type.
    """
    meter: UsageMeter = TokenMeter(MemoryBillingStore())
    del meter
