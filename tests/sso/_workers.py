"""
Functions run in child processes by the SAML multi-process tests (spawn).
"""

from __future__ import annotations

from pathlib import Path

from zerfoo_cloud.errors import SAMLError
from zerfoo_cloud.sso import SAMLMetadata, SAMLProvider
from zerfoo_cloud.stores.lmdb import LMDBStores


def validate_with_lmdb(
    *,
    path: str,
    data: bytes,
    metadata: SAMLMetadata,
    settings: dict[str, object],
    now: float,
    request_id: str,
) -> str:
    """
    Validate *data* with a provider whose replay cache is the LMDB store at
    *path*; return the subject, or the name of the error class.
    """
    stores = LMDBStores.open(Path(path))
    try:
        provider = SAMLProvider(
            metadata,
            "tenant-1",
            clock=lambda: now,
            replay_cache=stores.replay,
            **settings,  # type: ignore[arg-type]
        )
        try:
            return provider.validate_assertion(data, request_id=request_id).subject
        except SAMLError as exc:
            return type(exc).__name__
    finally:
        stores.close()
