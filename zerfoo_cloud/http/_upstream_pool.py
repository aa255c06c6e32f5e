"""
A pool of upstream replicas: balancing, passive and active health.

`UpstreamPool` holds one `Replica` per base URL, each with its own
`zerfoo_cloud.http._upstream_client.UpstreamClient`. `UpstreamPool.pick`
chooses, among the healthy replicas that serve a model, the one with the
fewest requests in flight. A replica that fails to connect
`PoolOptions.eject_after` times in a row is ejected: it gets no request for
`PoolOptions.eject_cooldown` seconds, then a background task probes it every
`PoolOptions.probe_interval` seconds (``GET /v1/models`` within
`PoolOptions.probe_timeout`) and readmits it when it answers with a status
under 500. The
same task reads the model list of each discovering replica every
`PoolOptions.discovery_interval` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, Protocol

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud._pool_options import PoolOptions
from zerfoo_cloud._upstream_options import UpstreamOptions
from zerfoo_cloud.http._model_routes import (
    ModelEntry,
    UpstreamSpec,
    parse_model_list,
)
from zerfoo_cloud.http._models import MAX_MODEL_LIST_BYTES
from zerfoo_cloud.http._proxy_rules import parse_base_url
from zerfoo_cloud.http._upstream_client import UPSTREAM_ERRORS, UpstreamClient

with needs_extra("proxy", "the upstream proxy"):
    import aiohttp

__all__ = ["MODELS_PATH", "PoolObserver", "Replica", "UpstreamPool", "connect_failed"]

_logger = logging.getLogger(__name__)

#: The path each replica is probed and asked for its models at.
MODELS_PATH: Final = "/v1/models"


def connect_failed(exc: BaseException) -> bool:
    """
    Whether *exc* means no connection was opened, so nothing of the request
    reached the replica (it may be sent to another one).

    .. versionadded:: 0.1.0
    """
    return isinstance(
        exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
    )


class PoolObserver(Protocol):
    """
    **Protocol**: what the pool reports per replica (the metrics of
    ``/metrics``, see `zerfoo_cloud._upstream_metrics.UpstreamMetrics`).

    .. versionadded:: 0.1.0
    """

    def request_done(self, upstream: str, *, error: bool, seconds: float) -> None:
        """One request to *upstream* ended, failed or not, after *seconds*."""

    def ejected(self, upstream: str) -> None:
        """*upstream* was ejected."""


class Replica:
    """
    One upstream server of the pool and what the pool knows of it.

    Attributes:
        url: The base URL (origin and path prefix).
        client: Its connection pool.
        named: The models named for it (``MODEL=URL``).
        discover: Whether its model list is read.
        models: The models it serves: *named*, and those its list had at the
            last successful read.
        outstanding: Requests in flight to it now.
        failures: Connect failures in a row.
        ejected_until: When its cooldown ends, or ``None`` while healthy; a
            replica is out (``0.0``) until it first answers a probe.
        requests, errors, ejections: Counters since the pool was built.

    .. versionadded:: 0.1.0
    """

    def __init__(self, spec: UpstreamSpec, options: UpstreamOptions) -> None:
        self.origin, self.prefix = parse_base_url(spec.url)
        self.url = self.origin + self.prefix
        self.client = UpstreamClient(self.origin, options)
        self.named = spec.models
        self.discover = spec.discover
        self.listed: dict[str, ModelEntry] = {}
        self.outstanding = 0
        self.failures = 0
        # Out until it first answers a probe (due at once).
        self.ejected_until: float | None = 0.0
        self.requests = 0
        self.errors = 0
        self.ejections = 0

    def __repr__(self) -> str:
        return f"Replica({self.url!r})"

    @property
    def healthy(self) -> bool:
        """
        Whether requests may be sent to it (it is not ejected).

        .. versionadded:: 0.1.0
        """
        return self.ejected_until is None

    @property
    def models(self) -> frozenset[str]:
        """
        The models it serves, named and listed.

        .. versionadded:: 0.1.0
        """
        return self.named | self.listed.keys()

    def target(self, path: str, query: str = "") -> str:
        """
        The path and query a request for *path* is sent to (the
        `zerfoo_cloud.http.proxy` path rule).

        .. versionadded:: 0.1.0
        """
        prefix = self.prefix
        if prefix and path != prefix and not path.startswith(prefix + "/"):
            path = prefix + path
        return f"{path}?{query}" if query else path


class UpstreamPool:
    """
    The replicas of a pool, which one a request goes to, and their health.

    Args:
        specs: The replicas (`zerfoo_cloud.http._model_routes.parse_upstreams`).
        upstream: The timeouts and pool size of each replica's client.
        options: Ejection, probing and discovery (`PoolOptions`).
        headers: Headers every probe carries (the upstream key).
        observer: Told of each request's end and each ejection.
        clock: The monotonic time source.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        specs: Sequence[UpstreamSpec],
        upstream: UpstreamOptions,
        options: PoolOptions,
        *,
        headers: Iterable[tuple[str, str]] = (),
        observer: PoolObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.replicas = [Replica(spec, upstream) for spec in specs]
        self.options = options
        self.observer = observer
        self._headers = [("accept-encoding", "identity"), *headers]
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._started: asyncio.Event | None = None

    # --- choosing -------------------------------------------------------

    def serves(self, model: str) -> bool:
        """
        Whether some replica, healthy or not, serves *model*.

        .. versionadded:: 0.1.0
        """
        return any(model in replica.models for replica in self.replicas)

    def pick(self, model: str, tried: Iterable[Replica] = ()) -> Replica | None:
        """
        The healthy replica serving *model* (any replica when *model* is
        empty) with the fewest requests in flight, not one of *tried*; the
        first such in the pool's order on a tie. ``None`` when there is none.

        .. versionadded:: 0.1.0
        """
        skip = set(map(id, tried))
        best: Replica | None = None
        for replica in self.replicas:
            if (
                replica.ejected_until is None
                and id(replica) not in skip
                and (not model or model in replica.models)
                and (best is None or replica.outstanding < best.outstanding)
            ):
                best = replica
        return best

    def models(self) -> dict[str, ModelEntry]:
        """
        Every model some replica serves, by id, with the entry of the first
        replica that lists it.

        .. versionadded:: 0.1.0
        """
        found: dict[str, ModelEntry] = {}
        for replica in self.replicas:
            for model, entry in replica.listed.items():
                found.setdefault(model, entry)
            for model in replica.named:
                found.setdefault(model, {})
        return found

    def ready(self) -> bool:
        """
        Whether every known model has a healthy replica (and some model is
        known).

        .. versionadded:: 0.1.0
        """
        healthy: set[str] = set()
        known: set[str] = set()
        for replica in self.replicas:
            known |= replica.models
            if replica.healthy:
                healthy |= replica.models
        return bool(known) and known <= healthy

    # --- outcomes -------------------------------------------------------

    def finished(
        self, replica: Replica, started: float, *, error: bool, connect: bool = False
    ) -> None:
        """
        Count one request to *replica* that began at *started*: *error* if
        it failed, *connect* if no connection could be opened (which counts
        towards ejection; any other outcome resets that count).

        .. versionadded:: 0.1.0
        """
        replica.requests += 1
        replica.errors += error
        if self.observer is not None:
            self.observer.request_done(
                replica.url, error=error, seconds=self._clock() - started
            )
        if connect:
            self._connect_failed(replica)
        else:
            replica.failures = 0

    def _connect_failed(self, replica: Replica) -> None:
        replica.failures += 1
        if replica.healthy and replica.failures >= self.options.eject_after:
            replica.ejected_until = self._clock() + self.options.eject_cooldown
            replica.ejections += 1
            _logger.warning(
                "upstream %s ejected after %d connect failures in a row",
                replica.url,
                replica.failures,
            )
            if self.observer is not None:
                self.observer.ejected(replica.url)

    # --- probing and discovery -----------------------------------------

    async def check(self, replica: Replica, *, discover: bool) -> bool:
        """
        Ask *replica* for its model list within the probe timeout: any
        answer under 500 readmits it (it is up, even without a model list),
        and a 2xx, with *discover* and a replica that discovers, replaces the
        models it had with the list. A connect failure counts towards
        ejection (a probe is not counted as a request); a list that cannot
        be read keeps the models it had.

        Returns:
            Whether it answered with a status under 500.

        .. versionadded:: 0.1.0
        """
        try:
            status, body = await asyncio.wait_for(
                self._get_models(replica), self.options.probe_timeout
            )
        except UPSTREAM_ERRORS as exc:
            _logger.info(
                "upstream %s probe failed: %s", replica.url, type(exc).__name__
            )
            if connect_failed(exc):
                self._connect_failed(replica)
            return False
        if status >= 500:  # noqa: PLR2004 - up, but not serving
            return False
        if replica.ejected_until is not None and replica.ejections:
            _logger.warning("upstream %s answers again: readmitted", replica.url)
        replica.ejected_until = None
        replica.failures = 0
        if discover and replica.discover and 200 <= status < 300:  # noqa: PLR2004
            try:
                replica.listed = parse_model_list(body)
            except ValueError as exc:
                _logger.warning(
                    "upstream %s: its model list cannot be read: %s", replica.url, exc
                )
        return True

    async def _get_models(self, replica: Replica) -> tuple[int, bytes]:
        """The status of ``GET /v1/models`` and its body (cut past the limit)."""
        target = replica.target(MODELS_PATH)
        async with replica.client.send("GET", target, self._headers, b"") as response:
            parts: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_any():
                parts.append(chunk)
                size += len(chunk)
                if size > MAX_MODEL_LIST_BYTES:
                    break  # parse_model_list refuses it whole
            return response.status, b"".join(parts)

    async def refresh(self) -> None:
        """
        Check every replica at once, reading the lists of those that discover.

        .. versionadded:: 0.1.0
        """
        await asyncio.gather(
            *(self.check(replica, discover=True) for replica in self.replicas)
        )

    async def _probe_ejected(self) -> None:
        now = self._clock()
        due = [
            replica
            for replica in self.replicas
            if replica.ejected_until is not None and replica.ejected_until <= now
        ]
        await asyncio.gather(*(self.check(replica, discover=True) for replica in due))

    async def _watch(self) -> None:
        next_refresh = self._clock() + self.options.discovery_interval
        while True:
            await asyncio.sleep(self.options.probe_interval)
            try:
                if self._clock() >= next_refresh:
                    next_refresh = self._clock() + self.options.discovery_interval
                    await self.refresh()
                else:
                    await self._probe_ejected()
            except Exception:
                _logger.exception("upstream pool health check failed")

    # --- life -----------------------------------------------------------

    async def start(self) -> None:
        """
        Open every replica's client, read the model lists once and start the
        background checks; later calls wait for the first to finish.

        .. versionadded:: 0.1.0
        """
        if self._started is not None:
            await self._started.wait()
            return
        self._started = asyncio.Event()
        try:
            for replica in self.replicas:
                replica.client.open()
            await self.refresh()
            self._task = asyncio.get_running_loop().create_task(self._watch())
        finally:
            self._started.set()

    async def aclose(self) -> None:
        """
        Stop the background checks and close every replica's client; a later
        `start` starts again.

        .. versionadded:: 0.1.0
        """
        task, self._task = self._task, None
        self._started = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for replica in self.replicas:
            await replica.client.aclose()

    def stats(self) -> Mapping[str, tuple[int, int, int, int]]:
        """
        Per replica URL: ``(requests, errors, ejections, outstanding)``.

        .. versionadded:: 0.1.0
        """
        return {
            r.url: (r.requests, r.errors, r.ejections, r.outstanding)
            for r in self.replicas
        }
