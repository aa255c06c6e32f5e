"""
The Redis replay cache: SAML assertion ids seen by any host of a fleet.
"""

from __future__ import annotations

import math
from typing import Any

from zerfoo_cloud.stores.redis._connection import RedisConnection
from zerfoo_cloud.stores.redis._keys import KeySpace

__all__ = ["RedisReplayCache"]

#: For stores built for tests: the entry holds its expiry on the caller's
#: clock, compared with the caller's *now*.
_ADD_AT = """
local held = redis.call('GET', KEYS[1])
if held and tonumber(held) > tonumber(ARGV[2]) then
  return 0
end
-- Tests only: a day of real time bounds what a test leaves behind.
redis.call('SET', KEYS[1], ARGV[1], 'EX', 86400)
return 1
"""


class RedisReplayCache:
    """
    A `zerfoo_cloud.stores.protocols.ReplayCache` in Redis: a replay is
    caught whichever host of the fleet saw the id first.

    `add` is one ``SET key 1 NX PX ttl``: atomic, the entry expires in
    Redis after ``expires_at - now`` (a duration, so the caller's clock
    need only run at the right speed). An id already past its expiry is new
    and is not stored. Keys are ``prefix r:<id>``, each in a Redis Cluster
    slot of its own. Built with ``trust_caller_clock=True`` (tests only) the
    entry holds *expires_at* and is compared with the caller's *now*.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        connection: RedisConnection,
        *,
        prefix: str = "zc:",
        trust_caller_clock: bool = False,
    ) -> None:
        self.connection = connection
        self._prefix = KeySpace(prefix).raw_prefix + b"r:"
        self._caller_clock = trust_caller_clock
        self._add_at = connection.client.register_script(_ADD_AT)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisReplayCache:
        """
        Open the cache on the Redis (or Redis Cluster) at *url*; as
        `zerfoo_cloud.stores.redis.RedisLimiterStore.from_url`.
        """
        connection, rest = RedisConnection.from_url(url, options)
        return cls(connection, **rest)

    def add(self, key: str, expires_at: float, now: float) -> bool:
        """
        Record *key* until *expires_at*; ``False`` if it is already recorded.
        """
        redis_key = self._prefix + key.encode("utf-8", "surrogatepass")
        with self.connection.guard("recording a SAML assertion id"):
            if self._caller_clock:
                args = [repr(float(expires_at)), repr(float(now))]
                return bool(self._add_at(keys=[redis_key], args=args))
            ttl_ms = math.ceil((expires_at - now) * 1000)
            if ttl_ms <= 0:
                return True
            return bool(self.connection.client.set(redis_key, b"1", nx=True, px=ttl_ms))

    def close(self) -> None:
        """
        Close the connections. Calling it twice is harmless.
        """
        self.connection.close()

    def __repr__(self) -> str:
        return f"RedisReplayCache({self.connection.location!r})"
