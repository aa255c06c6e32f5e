"""
Counters in Redis or a Redis Cluster, shared by every host of a fleet: the
limiter store (token buckets, concurrency leases), the SAML replay cache and
the key revocations (publish/subscribe) that keep every host's key cache
fresh.

Needs the ``redis`` extra (``pip install 'zerfoo-cloud[redis]'``); see
``docs/redis.md``.
"""

from __future__ import annotations

from zerfoo_cloud.stores.redis._connection import RedisConnection
from zerfoo_cloud.stores.redis.limiter import RedisLimiterStore
from zerfoo_cloud.stores.redis.replay import RedisReplayCache
from zerfoo_cloud.stores.redis.revocations import RedisKeyRevocations

__all__ = [
    "RedisConnection",
    "RedisKeyRevocations",
    "RedisLimiterStore",
    "RedisReplayCache",
]
