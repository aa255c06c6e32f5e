"""
Usage events: what `TokenMeter` publishes per request, and where they go.

A `UsageEvent` is the token use of one request; a `UsageRecorder` takes
events (NDJSON, a message broker, ...). A recorder that also has a
``flush()`` method is flushed after each batch of events.
"""

from __future__ import annotations

import json
from typing import Protocol, runtime_checkable

import attrs

__all__ = ["Flushable", "UsageEvent", "UsageRecorder"]


@attrs.frozen
class UsageEvent:
    """
    The token use of one request, as published to a `UsageRecorder`.

    *timestamp* is in whole Unix seconds. *tenant_id* is the tenant's id,
    never anything derived from its key. *key_id* is the public id of the
    API key that made the request (``""``: none known); the JSON form
    leaves it out when it is empty, as events had no key id before.

    .. versionadded:: 0.1.0
    """

    tenant_id: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    timestamp: int
    key_id: str = ""

    def to_json(self) -> str:
        """
        Return the event as one line of compact JSON (no newline).
        """
        data = attrs.asdict(self)
        if not self.key_id:
            del data["key_id"]
        return json.dumps(data, separators=(",", ":"))


@runtime_checkable
class UsageRecorder(Protocol):
    """
    **Protocol**: Where usage events go (NDJSON, a message broker, ...).

    `TokenMeter` calls `record` from a background thread, never from the
    request that produced the event. If the recorder also has a ``flush()``
    method, the meter calls it after each batch of events.

    .. versionadded:: 0.1.0
    """

    def record(self, event: UsageEvent) -> None:
        """
        Publish *event*. May raise; callers log and count the failure.
        """


@runtime_checkable
class Flushable(Protocol):
    """
    **Protocol**: A recorder that also buffers: `TokenMeter` calls `flush`
    after handing it each batch of events.
    """

    def flush(self) -> None:
        """
        Push out what earlier `UsageRecorder.record` calls buffered.
        """
