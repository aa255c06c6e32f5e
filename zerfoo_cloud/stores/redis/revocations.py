"""
Key revocations over Redis publish/subscribe: a tenant changed on one host
is dropped from every host's key cache as soon as the message arrives.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud._fork import reset_in_child
from zerfoo_cloud.errors import StoreError
from zerfoo_cloud.stores._seconds import check_seconds
from zerfoo_cloud.stores._subscribers import Subscribers, call
from zerfoo_cloud.stores.redis._connection import RedisConnection
from zerfoo_cloud.stores.redis._keys import KeySpace

with needs_extra("redis", "Redis counters"):
    import redis.exceptions

if TYPE_CHECKING:
    from zerfoo_cloud.stores.protocols import Subscription

__all__ = ["RedisKeyRevocations"]

_log = logging.getLogger("zerfoo_cloud.stores.redis")

#: How long one wait for a message lasts, in seconds: how soon `close` is
#: noticed and how often the connection's health is checked.
_POLL = 0.1


class RedisKeyRevocations:
    """
    A `zerfoo_cloud.stores.protocols.KeyRevocations` on Redis
    publish/subscribe, shared by every host pointing at one Redis or Redis
    Cluster (plain ``PUBLISH`` reaches every node of a cluster).

    `publish` is one ``PUBLISH`` on the channel ``<prefix>revoked``, the
    tenant id its payload. The first `subscribe` starts a daemon thread
    that listens on the channel and calls each subscriber with every id
    that arrives, typically within a millisecond or two of the publish.

    **Lost messages.** Redis does not keep messages for a subscriber that
    is away. Each time the subscription is confirmed by Redis (the first
    time, and after every reconnection, whether redis-py reconnected by
    itself or the thread opened a new connection) every subscriber is
    called with ``None``: a `zerfoo_cloud.TenantManager` then drops every
    tenant it kept, so anything missed while disconnected is read again
    from the tenant store. While the connection is down the managers'
    time to live (*cache_ttl*, at most a second) bounds how long a revoked
    key keeps working. A connection that goes silent without being closed
    is found by a ``PING`` every *ping_every* seconds: one not answered
    within ``3 * ping_every`` counts as lost. Reconnection attempts back off
    from *backoff_min* to *backoff_max* seconds, doubling.

    The thread is a daemon; in a forked child (`zerfoo_cloud._fork`) the
    parent's connection is left alone and a new thread starts listening if
    anything is subscribed.

    Failures of `publish` raise `zerfoo_cloud.errors.StoreError`
    (`zerfoo_cloud.errors.StoreUnavailableError` when Redis cannot be
    reached), whose message names the host, never the password.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        connection: RedisConnection,
        *,
        prefix: str = "zc:",
        ping_every: float = 1.0,
        backoff_min: float = 0.05,
        backoff_max: float = 2.0,
    ) -> None:
        self.connection = connection
        #: The channel messages are published on.
        self.channel = KeySpace(prefix).raw_prefix + b"revoked"
        self._ping_every = check_seconds("ping_every", ping_every)
        self._backoff_min = check_seconds("backoff_min", backoff_min)
        self._backoff_max = max(
            self._backoff_min, check_seconds("backoff_max", backoff_max)
        )
        self._subscribers = Subscribers()
        self._closed = False
        #: How many times the subscription was confirmed (1 once listening;
        #: each reconnection adds one).
        self.subscribed = 0
        self._live = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._confirming = threading.RLock()
        self._thread: threading.Thread | None = None
        reset_in_child(self)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisKeyRevocations:
        """
        Open the revocations on the Redis (or, with ``cluster=True``, the
        Redis Cluster) at *url*; as
        `zerfoo_cloud.stores.redis.RedisLimiterStore.from_url`, with the
        constructor's options (``prefix``, ``ping_every``, ``backoff_min``,
        ``backoff_max``).
        """
        connection, rest = RedisConnection.from_url(url, options)
        return cls(connection, **rest)

    @property
    def live(self) -> bool:
        """
        Whether the listening thread holds a confirmed subscription now.
        """
        return self._live

    def publish(self, tenant_id: str) -> None:
        """
        Tell every subscribed host that tenant *tenant_id* changed.

        Raises:
            StoreError: Redis failed (`zerfoo_cloud.errors.StoreUnavailableError`
                when it cannot be reached), or this object is closed.
        """
        payload = tenant_id.encode("utf-8", "surrogatepass")
        with self.connection.guard("publishing a key revocation"):
            self.connection.client.publish(self.channel, payload)

    def subscribe(self, callback: Callable[[str | None], None]) -> Subscription:
        """
        Call *callback* with every tenant id published from now on (by any
        host), and with ``None`` each time the subscription is confirmed.

        Raises:
            StoreError: this object is closed.
        """
        if self._closed:
            msg = (
                f"the key revocations on Redis at {self.connection.location} are closed"
            )
            raise StoreError(msg)
        with self._confirming:
            subscription = self._subscribers.add(callback)
            live = self._live
        self._start()
        if live:
            # Already listening: live at once.
            call(callback, None)
        return subscription

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._listen,
                    name="zerfoo-cloud-key-revocations",
                    daemon=True,
                )
                self._thread.start()

    def _listen(self) -> None:
        delay = self._backoff_min
        failing = False
        stop = self._stop
        while not stop.is_set():
            confirmed = self.subscribed
            try:
                self._listen_once()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any failure
                self._live = False
                if stop.is_set():
                    return
                if self.subscribed != confirmed:
                    # It was listening: a new outage, warned about again.
                    failing = False
                    delay = self._backoff_min
                if not failing:
                    failing = True
                    _log.warning(
                        "key revocations: lost Redis at %s (%s); keys revoked "
                        "meanwhile stop working within the cache time to live; "
                        "reconnecting",
                        self.connection.location,
                        self._describe(exc),
                    )
                stop.wait(delay)
                delay = min(delay * 2, self._backoff_max)
                continue
            return
        # Stopped: the finally of _listen_once closed the connection.

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, redis.exceptions.RedisError):
            return str(self.connection.error("listening", exc))
        return f"{type(exc).__name__}"

    def _listen_once(self) -> None:
        # One connection: subscribe, then deliver until stopped (returns) or
        # the connection fails (raises).
        pubsub = self.connection.client.pubsub()
        try:
            pubsub.subscribe(self.channel)
            heard = time.monotonic()
            pinged = heard
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=_POLL)
                now = time.monotonic()
                if message is not None:
                    heard = now
                    self._handle(message)
                elif now - heard > 3 * self._ping_every:
                    msg = f"no answer from Redis for {now - heard:.1f} s"
                    raise redis.exceptions.TimeoutError(msg)
                if now - pinged >= self._ping_every:
                    pinged = now
                    pubsub.ping()
        finally:
            self._live = False
            try:
                pubsub.close()
            except Exception:  # noqa: BLE001 - closing a dead connection
                _log.debug("closing the key revocation subscription failed")

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "message":
            data = message.get("data")
            if isinstance(data, bytes):
                self._subscribers.deliver(data.decode("utf-8", "surrogatepass"))
        elif kind == "subscribe":
            # Live (again): whatever was published while away is unknown.
            if self.subscribed:
                _log.warning(
                    "key revocations: listening again on Redis at %s; "
                    "dropping every cached key",
                    self.connection.location,
                )
            with self._confirming:
                # Every subscriber hears None exactly once per confirmation:
                # those added before it here, those added after in subscribe.
                self._subscribers.deliver(None)
                self._live = True
                self.subscribed += 1

    def close(self) -> None:
        """
        Stop listening, drop every subscriber and close the connections.
        Calling it twice is harmless.
        """
        with self._lock:
            self._closed = True
            thread = self._thread
        self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)
        self._subscribers.clear()
        self.connection.close()

    def _forked(self) -> None:  # pragma: no cover - runs in forked children
        # The parent's thread is not here and its lock may be held; its
        # connection is redis-py's to drop (it checks the process id).
        self._lock = threading.Lock()
        self._confirming = threading.RLock()
        self._stop = threading.Event()
        self._thread = None
        self._live = False
        self._subscribers.reset()
        if self._subscribers and not self._closed:
            self._start()

    def __repr__(self) -> str:
        return f"RedisKeyRevocations({self.connection.location!r}, channel={self.channel!r})"
