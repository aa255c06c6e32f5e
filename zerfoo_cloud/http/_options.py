"""
The settings of the HTTP policy: `PolicyOptions`.
"""

from __future__ import annotations

import attrs

from zerfoo_cloud.errors import InvalidConfigError

__all__ = ["PolicyOptions"]


def _non_negative(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        msg = f"{attribute.name} must be a non-negative integer, not {value!r}"
        raise InvalidConfigError(msg, field=attribute.name)


@attrs.frozen
class PolicyOptions:
    """
    The settings of the HTTP policy (see `zerfoo_cloud.CloudServer`).

    .. versionadded:: 0.1.0
    """

    max_body_bytes: int = attrs.field(default=32 * 1024 * 1024, validator=_non_negative)
    default_estimate: int = attrs.field(default=1024, validator=_non_negative)
    default_max_tokens: int = attrs.field(default=512, validator=_non_negative)
    include_usage: bool = True
    durable: bool = True
    health_path: str = "/healthz"
