"""
`KeyEvent`: what `TenantManager` tells its *key_events* sink when a key is
created, updated, revoked or rotated
(`zerfoo_cloud.alerts` turns them into alerts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import attrs

from zerfoo_cloud.key_records import KeyRecord

__all__ = ["KEY_EVENT_KINDS", "KeyEvent", "KeyEventSink", "tell_key_event"]

#: What happened to the key.
KEY_EVENT_KINDS = ("created", "updated", "revoked", "rotated")

_log = logging.getLogger("zerfoo_cloud.tenants")


@attrs.frozen
class KeyEvent:
    """
    A key of tenant *tenant_id* was *kind* (one of `KEY_EVENT_KINDS`) at
    *at* (Unix seconds): *key* is its record (for ``rotated``, the new
    key's), *previous* the rotated key's record as it is now, or for
    ``updated`` the key's record before the change (``None`` otherwise). Records hold hashes and visible prefixes, never a key.

    .. versionadded:: 0.1.0
    """

    kind: str
    tenant_id: str
    key: KeyRecord
    at: float
    previous: KeyRecord | None = None


#: Told of each key event; must not block (it runs in the caller's thread).
KeyEventSink = Callable[[KeyEvent], None]


def tell_key_event(sink: KeyEventSink | None, event: KeyEvent) -> None:
    """
    Tell *sink* of *event*; a sink that raises is logged, never raised:
    the change is made either way.
    """
    if sink is None:
        return
    try:
        sink(event)
    except Exception as exc:  # noqa: BLE001 - the key change is made; logged
        _log.warning(
            "the key event sink failed on %s of key %s of tenant %r (%s)",
            event.kind,
            event.key.id,
            event.tenant_id,
            type(exc).__name__,
        )
