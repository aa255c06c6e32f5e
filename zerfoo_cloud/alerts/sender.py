"""
`WebhookSender`: the thread that POSTs due deliveries from an alert outbox,
signs each attempt, and records what came of it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from zerfoo_cloud.alert_records import Attempt
from zerfoo_cloud.alerts.endpoints import display_url
from zerfoo_cloud.alerts.post import post
from zerfoo_cloud.alerts.retry import RetryPolicy
from zerfoo_cloud.alerts.signing import sign

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.alert_records import Delivery
    from zerfoo_cloud.alerts.signing import WebhookSecret
    from zerfoo_cloud.alerts.watcher import AlertWatcher
    from zerfoo_cloud.stores.alerts import AlertOutbox

__all__ = ["DEFAULT_POLL", "Poster", "WebhookSender"]

#: The sender looks at the outbox at least this often (seconds): to see
#: deliveries queued by other processes of the host.
DEFAULT_POLL = 1.0
#: Deliveries sent per round.
_BATCH = 100

#: How a delivery is POSTed: ``(url, body, headers, timeout) -> outcome``.
Poster = Callable[[str, bytes, dict[str, str], float], str]

_log = logging.getLogger("zerfoo_cloud.alerts")


class WebhookSender:
    """
    Sends the due deliveries of *outbox*, oldest first, in a thread of its
    own (`start`), or in the calling thread (`send_due`).

    Each attempt is signed anew (`zerfoo_cloud.alerts.sign`, with every
    secret of *secrets*; ``webhook-id`` is the event id, so a retry carries
    the same id) and POSTed with *policy*'s timeout. A 2xx answer delivers
    it; anything else, a timeout or no connection is a failed attempt,
    retried after *policy*'s backoff or moved to the dead letters when
    *policy* gives up. Every attempt's time and result are kept in the
    outbox. One process of a host sends at a time (`AlertOutbox.sending`).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        outbox: AlertOutbox,
        secrets: Sequence[WebhookSecret],
        *,
        policy: RetryPolicy | None = None,
        clock: Clock = time.time,
        rng: random.Random | None = None,
        poster: Poster = post,
        poll: float = DEFAULT_POLL,
        watchers: Sequence[AlertWatcher] = (),
    ) -> None:
        self.outbox = outbox
        self.secrets = tuple(secrets)
        self.policy = policy or RetryPolicy()
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self.poster = poster
        self.poll = poll
        self.watchers = list(watchers)
        self._wake = threading.Condition(threading.Lock())
        self._woken = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    def send_due(self) -> int:
        """
        Send every delivery due now, in this thread; return how many went.
        Does nothing (returns 0) while another process of the host sends.
        """
        went = 0
        with self.outbox.sending() as mine:
            if not mine:
                return 0
            while not self._stopping:
                due = self.outbox.due(self.clock(), _BATCH)
                if not due:
                    break
                for delivery in due:
                    if self._stopping:
                        break
                    went += self._send(delivery)
        self._tell_counts()
        return went

    def _send(self, delivery: Delivery) -> bool:
        now = self.clock()
        event = delivery.event
        body = event.body()
        headers = sign(self.secrets, event.id, int(now), body)
        result = self.poster(delivery.url, body, headers, self.policy.timeout)
        attempt = Attempt(now, result)
        if result.isdigit() and 200 <= int(result) < 300:  # noqa: PLR2004
            self.outbox.attempted(delivery, attempt, "delivered", now)
            for watcher in self.watchers:
                watcher.delivered()
            return True
        tries = len(delivery.attempts) + 1
        after = self.clock()
        for watcher in self.watchers:
            watcher.attempt_failed()
        if self.policy.gives_up(tries, delivery.queued_at, after):
            self.outbox.attempted(delivery, attempt, "dead", after)
            for watcher in self.watchers:
                watcher.dead_lettered()
            _log.warning(
                "alert %s (%s) to %s gave up after %d attempts (last: %s); it is "
                "kept as a dead letter: 'zerfoo-cloud alerts retry' sends it again",
                event.id,
                event.type,
                display_url(delivery.url),
                tries,
                result,
            )
            return False
        next_at = after + self.policy.delay(tries, self.rng)
        self.outbox.attempted(delivery, attempt, "retry", next_at)
        _log.info(
            "alert %s to %s failed (%s); attempt %d, retried in %.1f s",
            event.id,
            display_url(delivery.url),
            result,
            tries,
            next_at - after,
        )
        return False

    def _tell_counts(self) -> None:
        if self.watchers:
            counts = self.outbox.counts()
            for watcher in self.watchers:
                watcher.counts_changed(counts)

    # -- the thread -------------------------------------------------------

    def start(self) -> None:
        """
        Start the sending thread (once).
        """
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="zerfoo-cloud webhook sender", daemon=True
            )
            self._thread.start()

    def wake(self) -> None:
        """
        Have the thread look at the outbox now.
        """
        with self._wake:
            self._woken = True
            self._wake.notify_all()

    def _run(self) -> None:
        while not self._stopping:
            try:
                self.send_due()
                upcoming = self.outbox.next_due()
            except Exception:  # noqa: BLE001 - the thread must live on; logged
                _log.exception("the webhook sender failed a round; it goes on")
                upcoming = None
            wait = self.poll
            if upcoming is not None:
                wait = min(wait, max(0.01, upcoming - self.clock()))
            with self._wake:
                if not self._woken and not self._stopping:
                    self._wake.wait(wait)
                self._woken = False

    def stop(self, timeout: float | None = 10.0) -> None:
        """
        Stop the thread after the attempt under way (waiting up to
        *timeout* seconds). What waits stays in the outbox.
        """
        self._stopping = True
        self.wake()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
