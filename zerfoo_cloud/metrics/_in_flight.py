"""
`InFlight`: one request counted in ``in_flight_requests``, released and
counted exactly once whatever happens to the request.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from types import TracebackType

    from prometheus_client import Gauge

__all__ = ["InFlight", "RequestCounter"]


class RequestCounter(Protocol):
    """
    **Protocol**: What `InFlight` needs of `zerfoo_cloud.metrics.Metrics`.
    """

    def request_finished(self, *args: Any, **kwargs: Any) -> None:
        """
        Count one finished request and release *in_flight*, as
        `zerfoo_cloud.metrics.Metrics.request_finished` does.
        """
        ...


class InFlight:
    """
    One request counted in ``in_flight_requests``, as returned by
    `Metrics.request_started`.

    The gauge goes back down exactly once, by `release`, `finish`,
    `Metrics.request_finished` with ``in_flight=`` this token, or leaving the
    ``with`` block, whichever comes first; later calls change nothing. The
    request is counted exactly once too: leaving the ``with`` block before
    `finish` counts it as an ``error`` of `model` (``unknown`` unless set).

    Attributes:
        tenant: the tenant given to `Metrics.request_started`.
        started: `time.perf_counter` when the request started.
        model: the model to report if the request ends without `finish`;
            set it once known.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_gauge",
        "_metrics",
        "_open",
        "_unfinished",
        "model",
        "started",
        "tenant",
    )

    def __init__(
        self, metrics: RequestCounter, tenant: str | None, gauge: Gauge
    ) -> None:
        self._metrics = metrics
        self._gauge = gauge
        # list.pop is atomic, so exactly one caller wins each flag, in any
        # thread, without a lock per request.
        self._open = [True]
        self._unfinished = [True]
        self.tenant = tenant
        self.model: str | None = None
        self.started = time.perf_counter()

    @property
    def active(self) -> bool:
        """
        Whether the request still counts as in flight.
        """
        return bool(self._open)

    def release(self) -> bool:
        """
        Take the request out of ``in_flight_requests`` without counting it.

        Returns:
            ``True`` the first time, ``False`` once released already.
        """
        try:
            self._open.pop()
        except IndexError:
            return False
        self._gauge.dec()
        return True

    def _claim(self) -> bool:
        try:
            self._unfinished.pop()
        except IndexError:
            return False
        return True

    def finish(
        self,
        model: str | None,
        result: str,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        *,
        duration_s: float | None = None,
    ) -> None:
        """
        Count the request and release it; see `Metrics.request_finished`.

        Args:
            model: the model asked for.
            result: one of `RESULTS`.
            prompt_tokens: tokens read.
            completion_tokens: tokens written.
            duration_s: the latency; by default the time since
                `Metrics.request_started`.

        Raises:
            InvalidConfigError: an unknown *result* or a negative figure;
                nothing is counted and the request stays in flight.
        """
        if duration_s is None:
            duration_s = time.perf_counter() - self.started
        self._metrics.request_finished(
            self.tenant,
            model,
            result,
            duration_s,
            prompt_tokens,
            completion_tokens,
            in_flight=self,
        )

    def __enter__(self) -> InFlight:  # noqa: PYI034  # the class is final in practice
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._unfinished:
            self.finish(self.model, "error")
        else:
            self.release()
