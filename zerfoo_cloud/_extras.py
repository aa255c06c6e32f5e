"""
The optional extras: which one a feature needs, and the error when it is
missing.

The core needs attrs, cryptography, lmdb and orjson only. A module that
needs an extra imports it inside ``with needs_extra(extra, feature):``, so a
missing module becomes one `MissingExtraError` line that names the extra.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from zerfoo_cloud.errors import MissingExtraError

__all__ = ["needs_extra"]


@contextmanager
def needs_extra(extra: str, feature: str) -> Iterator[None]:
    """
    Turn a third-party module missing in the block into `MissingExtraError`.

    An import error of zerfoo-cloud's own modules passes through unchanged:
    only a missing third-party module is reported as a missing extra.
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        if not exc.name or exc.name.partition(".")[0] == "zerfoo_cloud":
            raise
        raise MissingExtraError(extra, feature, exc.name) from exc
