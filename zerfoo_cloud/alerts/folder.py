"""
`alerts_folder`: where a host keeps its alert outbox.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from zerfoo_cloud.stores._urls import redact_url
from zerfoo_cloud.stores.open import lmdb_folder, state_folder

__all__ = ["ALERTS_OUTBOX_ENV", "alerts_folder"]

#: The environment variable naming the alert outbox folder.
ALERTS_OUTBOX_ENV = "ZERFOO_CLOUD_ALERTS_OUTBOX"


def alerts_folder(records: str, env: Mapping[str, str] | None = None) -> Path:
    """
    The alert outbox folder of the records store *records* (a folder or a
    URL): `ALERTS_OUTBOX_ENV` of *env* (default: the process environment)
    when set, else one folder per records store under the user's state
    folder: ``$XDG_STATE_HOME/zerfoo-cloud/alerts/NAME-HASH``
    (``~/.local/state`` without ``XDG_STATE_HOME``), beside the records
    outboxes (``…/zerfoo-cloud/outbox/``). *HASH* is taken from the LMDB
    folder's absolute path, or from the URL without its password, so every
    process of one host serving one store shares one alert outbox.

    .. versionadded:: 0.1.0
    """
    environ = os.environ if env is None else env
    given = environ.get(ALERTS_OUTBOX_ENV)
    if given:
        return Path(given)
    folder = lmdb_folder(records)
    where = str(folder.resolve()) if folder is not None else redact_url(records)
    name = folder.name if folder is not None else where.rsplit("/", 1)[-1]
    return state_folder("alerts", name, where, environ)
