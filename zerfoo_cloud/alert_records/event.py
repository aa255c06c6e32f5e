"""
`AlertEvent`: one thing worth telling a tenant's operators about (a budget
threshold crossed, a key about to expire, ...), and the JSON body that
carries it to a webhook.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import attrs
import orjson

from zerfoo_cloud._field_limits import MAX_TENANT_ID_BYTES
from zerfoo_cloud.audit_records.cleaning import _has_secret
from zerfoo_cloud.errors import InvalidConfigError

__all__ = [
    "EVENT_TYPES",
    "MAX_DATA_BYTES",
    "AlertEvent",
    "deterministic_event_id",
    "random_event_id",
]

#: Every event type, dotted: ``budget.*`` from spend budgets, ``key.*``
#: from API keys.
EVENT_TYPES = (
    "budget.threshold",
    "budget.exhausted",
    "budget.overrun",
    "key.expiring",
    "key.created",
    "key.updated",
    "key.revoked",
    "key.rotated",
    "test",
)
#: An event's *data*, as JSON, holds at most this many bytes.
MAX_DATA_BYTES = 16 * 1024
#: The longest event id.
MAX_ID_LENGTH = 100
_ID_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
)
#: Every event id starts with this.
ID_PREFIX = "evt_"


def deterministic_event_id(event_type: str, *parts: object) -> str:
    """
    The id of the event of *event_type* made of *parts* (tenant, key id,
    period start, threshold, ...): ``evt_`` and 32 hex digits of the
    SHA-256 of them. The same parts give the same id on every host and
    every run, so the same event is queued and delivered once.
    """
    text = "\x1f".join([event_type, *("" if p is None else str(p) for p in parts)])
    return (
        ID_PREFIX
        + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    )


def random_event_id() -> str:
    """
    A new, unique event id (``evt_`` and 32 random hex digits), for events
    that happen once (a key created).
    """
    return ID_PREFIX + secrets.token_hex(16)


def _check_json(value: object, where: str) -> None:
    if value is None or isinstance(value, (bool, int)):
        return
    if isinstance(value, str):
        if _has_secret(value):
            msg = f"alert data {where} holds something shaped like an API key; send key prefixes only"
            raise InvalidConfigError(msg, field="data")
        return
    if isinstance(value, float) and math.isfinite(value):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                msg = f"alert data {where} has a key that is not text: {key!r}"
                raise InvalidConfigError(msg, field="data")
            _check_json(item, f"{where}.{key}")
        return
    msg = f"alert data {where} is not JSON-safe ({type(value).__name__})"
    raise InvalidConfigError(msg, field="data")


def _data(value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        msg = f"alert data must be a mapping, not {type(value).__name__}"
        raise InvalidConfigError(msg, field="data")
    _check_json(value, "data")
    plain: dict[str, Any] = orjson.loads(orjson.dumps(dict(value)))
    if len(orjson.dumps(plain)) > MAX_DATA_BYTES:
        msg = f"alert data holds more than {MAX_DATA_BYTES} bytes of JSON"
        raise InvalidConfigError(msg, field="data")
    return plain


def _check_id(instance: object, attribute: object, value: Any) -> None:
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_ID_LENGTH
        or not set(value) <= _ID_CHARS
    ):
        msg = f"an alert event id is 1 to {MAX_ID_LENGTH} letters, digits, _ or -, not {value!r}"
        raise InvalidConfigError(msg, field="id")


def _check_type(instance: object, attribute: object, value: Any) -> None:
    if value not in EVENT_TYPES:
        msg = f"alert event type must be one of {', '.join(EVENT_TYPES)}, not {value!r}"
        raise InvalidConfigError(msg, field="type")


def _check_time(instance: object, attribute: object, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (0 <= value < 2**33)
    ):
        msg = f"created_at must be Unix seconds from 1970 to 2242, not {value!r}"
        raise InvalidConfigError(msg, field="created_at")


def _check_tenant(instance: object, attribute: object, value: Any) -> None:
    if (
        not isinstance(value, str)
        or len(value.encode("utf-8", "surrogatepass")) > MAX_TENANT_ID_BYTES
    ):
        msg = f"tenant_id must be text of at most {MAX_TENANT_ID_BYTES} bytes"
        raise InvalidConfigError(msg, field="tenant_id")


@attrs.frozen
class AlertEvent:
    """
    One alert: its *id* (the same event always has the same id, see
    `deterministic_event_id`; receivers drop an id they have seen), its
    *type* (one of `EVENT_TYPES`), when it happened (*created_at*, Unix
    seconds), the tenant it concerns (``""``: none) and its *data*.

    *data* is JSON-safe (text keys; text, integers, finite floats,
    booleans, ``None``, lists and mappings) and never a secret: text shaped
    like an API key is refused (events carry key ids and visible prefixes
    only). Money is integers of micro-units.

    The webhook body is `body`: ``{"id", "type", "timestamp" (ISO 8601,
    UTC), "tenant_id", "data"}`` as compact JSON.

    Raises:
        InvalidConfigError: a field is malformed, naming it.

    .. versionadded:: 0.1.0
    """

    id: str = attrs.field(validator=_check_id)
    type: str = attrs.field(validator=_check_type)
    created_at: float = attrs.field(validator=_check_time)
    tenant_id: str = attrs.field(validator=_check_tenant)
    data: dict[str, Any] = attrs.field(
        factory=dict, converter=_data, eq=True, hash=False
    )

    def timestamp(self) -> str:
        """
        *created_at* as ISO 8601 text in UTC, to the microsecond.
        """
        stamp = datetime.fromtimestamp(self.created_at, timezone.utc)
        return stamp.isoformat(timespec="microseconds").replace("+00:00", "Z")

    def to_dict(self) -> dict[str, Any]:
        """
        The event as the JSON object of its webhook body.
        """
        return {
            "id": self.id,
            "type": self.type,
            "timestamp": self.timestamp(),
            "tenant_id": self.tenant_id,
            "data": self.data,
        }

    def body(self) -> bytes:
        """
        The webhook body: `to_dict` as compact UTF-8 JSON (what is signed).
        """
        return orjson.dumps(self.to_dict())

    def stored(self) -> dict[str, Any]:
        """
        The event as an outbox keeps it (`from_stored` reads it back).
        """
        return {
            "id": self.id,
            "type": self.type,
            "created_at": self.created_at,
            "tenant_id": self.tenant_id,
            "data": self.data,
        }

    @classmethod
    def from_stored(cls, data: object) -> AlertEvent:
        """
        Rebuild an event from `stored`'s form.

        Raises:
            ValueError: *data* is not such a form.
        """
        if not isinstance(data, dict) or set(data) != _STORED:
            msg = "not an alert event (wrong fields)"
            raise ValueError(msg)
        return cls(**data)


_STORED = frozenset(("id", "type", "created_at", "tenant_id", "data"))
