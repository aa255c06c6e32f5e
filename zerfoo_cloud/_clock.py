"""
The clock type shared by every component.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Clock"]

#: A function returning the current time in Unix seconds. Wall time, not
#: monotonic time: limiter state is shared between processes and billing needs
#: real timestamps.
Clock = Callable[[], float]
