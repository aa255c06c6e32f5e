"""
`WebhookEndpoint`: a URL that receives alerts, and which event types it
wants.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import attrs

from zerfoo_cloud.alert_records import EVENT_TYPES
from zerfoo_cloud.errors import InvalidConfigError

__all__ = ["MAX_URL_LENGTH", "WebhookEndpoint", "display_url", "parse_event_filter"]

#: The longest endpoint URL.
MAX_URL_LENGTH = 2048


def display_url(url: str) -> str:
    """
    *url* as logs, metrics and listings show it: scheme, host and port
    only, the path shown as ``/…`` (webhook URLs often hold a token in
    their path or query).
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(malformed URL)"
    if ":" in host:
        host = f"[{host}]"
    rest = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{rest}"


def _check_url(instance: object, attribute: object, value: Any) -> None:
    ok = isinstance(value, str) and 0 < len(value) <= MAX_URL_LENGTH
    if ok:
        assert isinstance(value, str)
        try:
            parts = urlsplit(value)
            ok = parts.scheme in {"http", "https"} and bool(parts.hostname)
            _ = parts.port
        except ValueError:
            ok = False
        ok = ok and not any(c.isspace() or ord(c) < 32 for c in value)  # noqa: PLR2004
    if not ok:
        msg = (
            "a webhook URL is http:// or https:// with a host, at most "
            f"{MAX_URL_LENGTH} characters, not {str(value)[:80]!r}"
        )
        raise InvalidConfigError(msg, field="webhook_url")


def parse_event_filter(text: str) -> tuple[str, ...]:
    """
    The event type patterns in *text*, comma separated (``budget.*,key.revoked``;
    ``*`` matches within and across dots). Empty text: every type.

    Raises:
        InvalidConfigError: a pattern matches no event type.
    """
    patterns = tuple(p.strip() for p in text.split(",") if p.strip())
    for pattern in patterns:
        if not fnmatch.filter(EVENT_TYPES, pattern):
            msg = (
                f"the webhook event filter {pattern[:80]!r} matches no event type; "
                f"the types are {', '.join(EVENT_TYPES)}"
            )
            raise InvalidConfigError(msg, field="webhook_events")
    return patterns


def _patterns(values: Iterable[str]) -> tuple[str, ...]:
    return (values,) if isinstance(values, str) else tuple(values)


@attrs.frozen
class WebhookEndpoint:
    """
    A URL that alerts are POSTed to, and the event type patterns it wants
    (`parse_event_filter`; empty: every type). Its `repr` shows the URL as
    `display_url` does.

    Raises:
        InvalidConfigError: the URL is not http(s) with a host, or a
            pattern matches no type.

    .. versionadded:: 0.1.0
    """

    url: str = attrs.field(validator=_check_url, repr=display_url)
    events: tuple[str, ...] = attrs.field(default=(), converter=_patterns)

    def __attrs_post_init__(self) -> None:
        parse_event_filter(",".join(self.events))

    def wants(self, event_type: str) -> bool:
        """
        Whether events of *event_type* go to this endpoint.
        """
        return not self.events or any(
            fnmatch.fnmatchcase(event_type, p) for p in self.events
        )
