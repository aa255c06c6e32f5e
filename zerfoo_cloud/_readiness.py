"""
The readiness probe of ``zerfoo-cloud serve``: ``GET /readyz``.

``/healthz`` says the process is alive; ``/readyz`` says it can serve: every
check (the store answers a read; with ``--upstream``, the upstream answers its
health path) passed. Load balancers and Kubernetes poll it often, so one
answer is kept for `DEFAULT_TTL` seconds and probes that arrive while a check
runs wait for that check instead of starting their own.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from zerfoo_cloud._extras import needs_extra

with needs_extra("server", "zerfoo-cloud serve"):
    import anyio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from zerfoo_cloud.http._types import Receive, Scope, Send

__all__ = ["DEFAULT_TIMEOUT", "DEFAULT_TTL", "Readiness"]

#: Seconds one readiness answer is reused.
DEFAULT_TTL = 1.0
#: Seconds a check may take before it counts as failed.
DEFAULT_TIMEOUT = 2.0


class Readiness:
    """
    Runs named checks, caches the answer, and serves it as an ASGI app.

    Args:
        checks: name to an async function that returns whether that part
            is ready; an exception or a time-out counts as not ready.
        ttl: seconds an answer is reused.
        timeout: seconds each check may take.
        clock: the monotonic time source.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        checks: Mapping[str, Callable[[], Awaitable[bool]]],
        *,
        ttl: float = DEFAULT_TTL,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.checks = dict(checks)
        self.ttl = ttl
        self.timeout = timeout
        self.clock = clock
        self._answer: dict[str, bool] | None = None
        self._expires = 0.0
        self._lock: anyio.Lock | None = None

    async def _run(self, check: Callable[[], Awaitable[bool]]) -> bool:
        try:
            with anyio.fail_after(self.timeout):
                return bool(await check())
        except Exception:  # noqa: BLE001 - any failure means not ready
            return False

    async def status(self) -> dict[str, bool]:
        """
        Return each check's result, at most `ttl` seconds old.
        """
        if self._answer is not None and self.clock() < self._expires:
            return self._answer
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if self._answer is not None and self.clock() < self._expires:
                return self._answer
            answer = {
                name: await self._run(check) for name, check in self.checks.items()
            }
            self._answer = answer
            self._expires = self.clock() + self.ttl
            return answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """
        Answer 200 ``{"status": "ready"}`` or 503 ``{"status": "not ready",
        "checks": {name: "ok" | "failing"}}``; no key needed.
        """
        answer = await self.status()
        ready = all(answer.values())
        document: dict[str, object] = {"status": "ready" if ready else "not ready"}
        if not ready:
            document["checks"] = {
                name: "ok" if ok else "failing" for name, ok in answer.items()
            }
        body = json.dumps(document).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200 if ready else 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"cache-control", b"no-store"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": b"" if scope.get("method") == "HEAD" else body,
            }
        )
