"""
The health, balancing and discovery settings of a pool of upstream replicas,
checked once: `PoolOptions`.

Like `zerfoo_cloud._upstream_options.UpstreamOptions`, it imports no
optional package, so ``zerfoo-cloud serve`` can check its ``--upstream-*``
options (and show their defaults) before the proxy loads.
"""

from __future__ import annotations

import attrs

from zerfoo_cloud._upstream_options import UpstreamKeywords, check_options

__all__ = ["PoolKeywords", "PoolOptions"]


@attrs.frozen
class PoolOptions:
    """
    When a replica is ejected, how it is probed back, and how often the
    model lists are read again.

    Attributes:
        eject_after: Connect failures in a row that eject a replica.
        eject_cooldown: Seconds an ejected replica gets no request before
            it is probed.
        probe_interval: Seconds between two rounds of probes of ejected
            replicas (a probe that answers readmits its replica).
        probe_timeout: Seconds one probe or one model list read may take.
        discovery_interval: Seconds between two reads of each replica's
            ``/v1/models`` (replicas with an explicit model map are only
            probed).

    Raises:
        InvalidConfigError: A time that is not a positive number, or
            *eject_after* under one; ``field`` names the option.

    .. versionadded:: 0.1.0
    """

    eject_after: int = 3
    eject_cooldown: float = 5.0
    probe_interval: float = 1.0
    probe_timeout: float = 2.0
    discovery_interval: float = 30.0

    def __attrs_post_init__(self) -> None:
        check_options(
            self,
            ("eject_cooldown", "probe_interval", "probe_timeout", "discovery_interval"),
            "eject_after",
        )


class PoolKeywords(UpstreamKeywords, total=False):
    """
    The `UpstreamOptions` and `PoolOptions` fields as keyword arguments (of
    `zerfoo_cloud.http.pooled_proxy.PooledProxy`): each one left out takes
    its options' default.

    .. versionadded:: 0.1.0
    """

    eject_after: int
    eject_cooldown: float
    probe_interval: float
    probe_timeout: float
    discovery_interval: float
