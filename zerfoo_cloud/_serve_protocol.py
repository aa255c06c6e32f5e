"""
``ServeProtocol``: the protocol class ``zerfoo-cloud serve`` gives uvicorn.

`zerfoo-cloud serve` names ``zerfoo_cloud._serve_protocol:ServeProtocol`` as
uvicorn's ``http`` setting. The class is `limited_protocol` over the parser of
the serve configuration (``auto``: httptools when installed), with the request-head limits of the serve configuration in the
environment; each worker builds it once, on first use.
"""

from __future__ import annotations

import asyncio
from typing import Any

from zerfoo_cloud._http_limits import limited_protocol
from zerfoo_cloud._serve_runtime import resolve_parser
from zerfoo_cloud.serve import ServeConfig

__all__: list[str] = []

_SERVE: dict[str, type[asyncio.Protocol]] = {}


def __getattr__(name: str) -> Any:
    # ``ServeProtocol``: the protocol ``zerfoo-cloud serve`` gives uvicorn,
    # built once per worker from the serve configuration in the environment.
    if name != "ServeProtocol":
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    if name not in _SERVE:
        config = ServeConfig.from_env()
        _SERVE[name] = limited_protocol(
            resolve_parser(config.http_parser),
            max_header_bytes=config.max_header_bytes,
            header_timeout=config.header_timeout,
        )
    return _SERVE[name]
