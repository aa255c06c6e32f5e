"""
Storage backends.

Every store is a `typing.Protocol` in `zerfoo_cloud.stores.protocols`, with an
in-memory implementation (`zerfoo_cloud.stores.memory`, for tests and one
process) and an LMDB implementation (`zerfoo_cloud.stores.lmdb`, the embedded
default: crash-safe and shared by every process of one host). Counters (limits,
concurrency slots, the SAML replay cache) can live in Redis or a Redis Cluster
(`zerfoo_cloud.stores.redis`, the ``redis`` extra), shared by every host,
which also carries key revocations between hosts (`KeyRevocations`);
`zerfoo_cloud.stores.failover` fails open on a host's own counters while the
shared ones cannot be reached.
"""

from __future__ import annotations
