"""
The timeouts and pool size of a connection pool to an upstream server,
checked once: `UpstreamOptions`.

It imports no optional package, so ``zerfoo-cloud serve`` can check its
``--upstream-*`` options (and show their defaults) before the proxy loads.
"""

from __future__ import annotations

from typing import TypedDict

import attrs

from zerfoo_cloud.errors import InvalidConfigError

__all__ = ["UpstreamKeywords", "UpstreamOptions", "check_options"]


def check_options(
    options: object, seconds: tuple[str, ...], count: str | None = None
) -> None:
    """
    Check that each of the *seconds* fields of *options* is a positive
    number of seconds, and that its *count* field is at least one.

    Raises:
        InvalidConfigError: One is not; ``field`` names it.

    .. versionadded:: 0.1.0
    """
    for field in seconds:
        value = getattr(options, field)
        if not value > 0:
            msg = f"{field} must be a positive number of seconds, not {value!r}"
            raise InvalidConfigError(msg, field=field)
    if count is not None and getattr(options, count) < 1:
        msg = f"{count} must be at least 1, not {getattr(options, count)!r}"
        raise InvalidConfigError(msg, field=count)


class UpstreamKeywords(TypedDict, total=False):
    """
    The `UpstreamOptions` fields as keyword arguments (of
    `zerfoo_cloud.http.proxy.UpstreamProxy`): each one left out takes the
    `UpstreamOptions` default.

    .. versionadded:: 0.1.0
    """

    connect_timeout: float
    read_timeout: float
    write_timeout: float
    pool_timeout: float
    max_connections: int
    keepalive_timeout: float


@attrs.frozen
class UpstreamOptions:
    """
    How long each step of an upstream request may take, and how many run at once.

    Attributes:
        connect_timeout: Seconds to open a connection.
        read_timeout: Seconds to wait for the next bytes of the response
            (the whole wait for a non-streamed answer, the gap between two
            chunks of a streamed one).
        write_timeout: Seconds to send each chunk of a request body that
            arrives in pieces.
        pool_timeout: Seconds to wait for a free connection when
            *max_connections* requests are in flight.
        max_connections: Requests in flight (and connections open) at most.
        keepalive_timeout: Seconds an idle connection is kept for reuse;
            under the upstream's own idle timeout (uvicorn's is 5 s), so the
            upstream never closes a connection as it is reused.

    Raises:
        InvalidConfigError: A timeout that is not a positive number, or fewer
            than one connection; ``field`` names the option.

    .. versionadded:: 0.1.0
    """

    connect_timeout: float = 5.0
    read_timeout: float = 300.0
    write_timeout: float = 60.0
    pool_timeout: float = 30.0
    max_connections: int = 100
    keepalive_timeout: float = 4.0

    def __attrs_post_init__(self) -> None:
        check_options(
            self,
            (
                "connect_timeout",
                "read_timeout",
                "write_timeout",
                "pool_timeout",
                "keepalive_timeout",
            ),
            "max_connections",
        )
