"""
The replay check: each accepted assertion is recorded, and a second use of
it is refused.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from zerfoo_cloud.sso.errors import SAMLReplayError

if TYPE_CHECKING:
    from zerfoo_cloud.stores.protocols import ReplayCache


def record_assertion(
    replay: ReplayCache,
    idp_entity_id: str,
    assertion_id: str,
    until: float,
    now: float,
) -> None:
    """
    Record the assertion *assertion_id* of the IdP *idp_entity_id* in
    *replay* until *until*.

    Raises:
        SAMLReplayError: it was recorded before and has not expired.
        StoreError: the replay cache failed.
    """
    key = hashlib.sha256(
        f"{idp_entity_id}\x00{assertion_id}".encode("utf-8", "surrogatepass")
    ).hexdigest()
    if not replay.add(f"saml:{key}", until, now):
        msg = f"the assertion {assertion_id!r} was already used (replay)"
        raise SAMLReplayError(msg)
