"""
`zerfoo_cloud._readiness.Readiness`: cached, coalesced readiness checks.
"""

from __future__ import annotations

import anyio

from zerfoo_cloud._readiness import Readiness


def test_answers_are_reused_for_the_ttl_and_failures_count_as_not_ready() -> None:
    """Probes within the TTL do not run the checks again; errors and time-outs fail."""
    now = [0.0]
    calls = {"up": 0}

    async def up() -> bool:
        calls["up"] += 1
        return True

    async def broken() -> bool:
        raise OSError

    async def slow() -> bool:
        await anyio.sleep(5)
        return True

    readiness = Readiness(
        {"up": up, "broken": broken, "slow": slow},
        ttl=1.0,
        timeout=0.05,
        clock=lambda: now[0],
    )

    async def probe() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(readiness.status)
        assert await readiness.status() == {"up": True, "broken": False, "slow": False}
        assert calls["up"] == 1
        now[0] = 1.5
        await readiness.status()
        assert calls["up"] == 2

    anyio.run(probe)
