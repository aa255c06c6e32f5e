"""
A Starlette endpoint that answers every method with one coroutine
(`Endpoint`): the admin API, SSO and console routes are each one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request

if TYPE_CHECKING:
    from starlette.responses import Response
    from starlette.types import Receive, Scope, Send

__all__ = ["Endpoint"]


class Endpoint:
    """
    A Starlette endpoint (an ASGI app, so that it sees every method) that
    answers with ``respond(request)``.
    """

    def __init__(self, respond: Callable[[Request], Awaitable[Response]]) -> None:
        self._respond = respond

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """
        Answer one request.
        """
        response = await self._respond(Request(scope, receive))
        await response(scope, receive, send)
