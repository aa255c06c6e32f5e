"""
The metrics in the Prometheus text format: its content type, and
multi-process mode (`MULTIPROC_DIR_ENV`, `render_multiprocess`).
"""

from __future__ import annotations

import os

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.errors import InvalidConfigError

with needs_extra("metrics", "Prometheus metrics"):
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        generate_latest,
        values,
    )
    from prometheus_client.multiprocess import MultiProcessCollector

__all__ = [
    "CONTENT_TYPE",
    "MULTIPROC_DIR_ENV",
    "check_multiprocess",
    "render_multiprocess",
]

#: The environment variable that switches on multi-process mode.
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: The content type of `Metrics.render`'s output (Prometheus text format).
CONTENT_TYPE: str = CONTENT_TYPE_LATEST


def check_multiprocess(path: str) -> None:
    """
    Check that multi-process mode can work with the folder *path*.

    Raises:
        InvalidConfigError: *path* is not a folder, or prometheus-client was
            imported before ``PROMETHEUS_MULTIPROC_DIR`` was set.
    """
    if not os.path.isdir(path):  # noqa: PTH112  # a str path from the environment
        msg = f"{MULTIPROC_DIR_ENV}={path!r} is not a folder: create it (empty) first"
        raise InvalidConfigError(msg, field=MULTIPROC_DIR_ENV)
    if values.ValueClass is values.MutexValue:
        msg = (
            f"{MULTIPROC_DIR_ENV} was set after prometheus_client was imported, so "
            "this process would write nothing to it: set it before the process starts"
        )
        raise InvalidConfigError(msg, field=MULTIPROC_DIR_ENV)


def render_multiprocess(path: str | os.PathLike[str]) -> bytes:
    """
    Return the sum of every process's metrics in the multi-process folder *path*.

    Any process can serve this, including one that records nothing itself
    (a supervisor or a sidecar).

    Raises:
        InvalidConfigError: *path* is not a folder.

    .. versionadded:: 0.1.0
    """
    registry = CollectorRegistry()
    try:
        MultiProcessCollector(registry, path=os.fspath(path))  # type: ignore[no-untyped-call]
    except ValueError as exc:
        msg = f"{os.fspath(path)!r} is not a folder: create it (empty) first"
        raise InvalidConfigError(msg, field=MULTIPROC_DIR_ENV) from exc
    return generate_latest(registry)
