"""
A streaming reverse proxy to a pool of OpenAI-compatible servers, routed by
model: `PooledProxy`.

``zerfoo-cloud serve --upstream URL --upstream URL …`` (or ``--upstream
MODEL=URL``) serves it. Each request goes to a healthy replica that serves
the model the policy read from the request (`CloudMiddleware` puts it in
``scope["state"]``, so the body is not read twice), the one with the fewest
requests in flight; ``GET /v1/models`` is answered from the pool. Balancing,
ejection and probing are `zerfoo_cloud.http._upstream_pool.UpstreamPool`'s;
which replica serves which model is `zerfoo_cloud.http._model_routes`'.

See ``docs/proxy.md``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from zerfoo_cloud._openai_error import openai_error_body
from zerfoo_cloud._pool_options import PoolKeywords, PoolOptions
from zerfoo_cloud._upstream_options import UpstreamOptions
from zerfoo_cloud.errors import ModelNotFoundError
from zerfoo_cloud.http._accounting import MODEL_KEY
from zerfoo_cloud.http._errors import error_response
from zerfoo_cloud.http._model_routes import model_list_body, parse_upstreams
from zerfoo_cloud.http._models import model_route
from zerfoo_cloud.http._proxy_exchange import Exchange
from zerfoo_cloud.http._proxy_types import Scope, Send
from zerfoo_cloud.http._upstream_client import UPSTREAM_ERRORS
from zerfoo_cloud.http._upstream_pool import (
    PoolObserver,
    Replica,
    UpstreamPool,
    connect_failed,
)
from zerfoo_cloud.http.proxy import UpstreamProxy, pass_on

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["PooledProxy"]

#: The keywords of `PooledProxy` that each replica's `UpstreamOptions` takes.
_UPSTREAM_FIELDS = frozenset(attrs.fields_dict(UpstreamOptions))
_NO_REPLICA = "No healthy upstream serves this model now; retry shortly."


class PooledProxy(UpstreamProxy):
    """
    An ASGI app that forwards each HTTP request to one replica of a pool.

    Everything `UpstreamProxy` promises holds for each request (streaming,
    headers, the path rule, the error mapping, mid-stream failures raised as
    `zerfoo_cloud.UpstreamError`), with routing on top:

    - The model is the one `CloudMiddleware` read and checked
      (``scope["state"]``); a request that names none goes to any replica.
    - A model no replica serves gets 404 ``model_not_found`` (OpenAI-shaped)
      without reaching a replica; one whose replicas are all ejected gets
      503 ``upstream_unavailable`` with ``Retry-After``.
    - Among the healthy replicas of the model, the one with the fewest
      requests in flight gets it. A request whose replica refuses the
      connection (or does not accept it in time) goes to the next one, when
      its body was read whole: nothing of it reached the first; a request
      that reached a replica is never sent again.
    - ``GET``/``HEAD /v1/models`` lists every model of the pool (filtered
      by the tenant's allow list by the middleware), and ``…/models/{id}``
      answers from the pool too.
    - `health` is true while every known model has a healthy replica.

    The pool opens (each replica's client, one read of every model list and
    the background checks) on lifespan startup or on first use, and closes
    on lifespan shutdown or `aclose`.

    Args:
        upstreams: ``URL`` or ``MODEL=URL`` each
            (`zerfoo_cloud.http._model_routes.parse_upstreams`).
        api_key: The upstreams' API key, or ``None``.
        observer: Told of each request's end and each ejection (metrics).
        options: Each replica's `UpstreamOptions` (``connect_timeout``,
            ``read_timeout``, ``write_timeout``, ``pool_timeout``,
            ``max_connections``, ``keepalive_timeout``) and the pool's
            `PoolOptions` (``eject_after``, ``eject_cooldown``,
            ``probe_interval``, ``probe_timeout``, ``discovery_interval``),
            each defaulted by its options class.

    Raises:
        InvalidConfigError: A bad spec, URL, key, timeout or count.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        upstreams: Sequence[str],
        *,
        api_key: str | None = None,
        observer: PoolObserver | None = None,
        **options: Unpack[PoolKeywords],
    ) -> None:
        specs = parse_upstreams(upstreams)
        fields: dict[str, Any] = dict(options)
        upstream = {name: fields.pop(name) for name in _UPSTREAM_FIELDS & set(fields)}
        super().__init__(specs[0].url, api_key=api_key, **upstream)
        pool = PoolOptions(**fields)
        self.pool = UpstreamPool(
            specs,
            self._options,
            pool,
            headers=[self._auth] if self._auth else [],
            observer=observer,
        )

    def __repr__(self) -> str:
        key = "<hidden>" if self._auth else None
        urls = [replica.url for replica in self.pool.replicas]
        return f"PooledProxy({urls!r}, api_key={key})"

    async def health(self) -> bool:
        """
        Whether every model the pool knows has a healthy replica.

        .. versionadded:: 0.1.0
        """
        await self.pool.start()
        return self.pool.ready()

    async def aclose(self) -> None:
        """
        Stop the pool's checks and close every replica's connections.

        .. versionadded:: 0.1.0
        """
        await self.pool.aclose()
        await super().aclose()

    async def _open(self) -> None:
        await self.pool.start()

    async def _dispatch(
        self,
        scope: Scope,
        path_query: tuple[str, str],
        headers: list[tuple[str, str]],
        content: bytes | AsyncIterator[bytes],
        exchange: Exchange,
    ) -> None:
        await self.pool.start()
        method: str = scope["method"]
        route = model_route(method, scope["path"])
        if route is not None:
            await self._answer_models(route, exchange, head=method == "HEAD")
            return
        model = _model_of(scope)
        if model and not self.pool.serves(model):
            await _send_refusal(exchange, ModelNotFoundError(model))
            return
        replica = self.pool.pick(model)
        if replica is None:
            await _send_unavailable(exchange)
            return
        tried: list[Replica] = []
        while replica is not None:
            failure = await self._try(
                replica, path_query, (method, headers, content), exchange
            )
            if failure is None:
                return
            tried.append(replica)
            if not (connect_failed(failure) and isinstance(content, bytes)):
                break
            # Nothing of the request reached that replica: the next one may
            # have it.
            replica = self.pool.pick(model, tried)
        if failure is not None and not exchange.client_gone:
            await self._failed(
                failure, exchange, started=exchange.started, upstream=tried[-1].url
            )

    async def _try(
        self,
        replica: Replica,
        path_query: tuple[str, str],
        request: tuple[str, list[tuple[str, str]], bytes | AsyncIterator[bytes]],
        exchange: Exchange,
    ) -> BaseException | None:
        """
        Send *request* (method, headers, body) to *replica*; the upstream
        failure, if any.
        """
        method, headers, content = request
        started = time.monotonic()
        replica.outstanding += 1
        try:
            async with replica.client.send(
                method, replica.target(*path_query), headers, content
            ) as response:
                await pass_on(response, exchange)
        except UPSTREAM_ERRORS as exc:
            connect = connect_failed(exc)
            self.pool.finished(replica, started, error=True, connect=connect)
            return exc
        except asyncio.CancelledError:
            # The client left: counted, not held against the replica.
            self.pool.finished(replica, started, error=False)
            raise
        finally:
            replica.outstanding -= 1
        error = response.status >= 500  # noqa: PLR2004 - a server error
        self.pool.finished(replica, started, error=error)
        return None

    async def _answer_models(
        self, route: tuple[bool, str], exchange: Exchange, *, head: bool
    ) -> None:
        models = self.pool.models()
        listing, model = route
        if listing:
            document: object = model_list_body(models)
        elif model in models:
            document = model_list_body({model: models[model]})["data"][0]  # type: ignore[index]
        else:
            await _send_refusal(exchange, ModelNotFoundError(model))
            return
        body = json.dumps(document).encode()
        await _send_json(exchange.send, 200, body, head=head)


def _model_of(scope: Scope) -> str:
    """The model `CloudMiddleware` read from the request, or ``""``."""
    state = scope.get("state")
    found = state.get(MODEL_KEY) if isinstance(state, dict) else None
    return found if isinstance(found, str) else ""


async def _send_json(
    send: Send,
    status: int,
    body: bytes,
    *,
    head: bool = False,
    extra: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _send_refusal(exchange: Exchange, exc: ModelNotFoundError) -> None:
    refusal = error_response(exc, request_id=exchange.request_id)
    await _send_json(exchange.send, refusal.status, refusal.body)


async def _send_unavailable(exchange: Exchange) -> None:
    body = openai_error_body(
        _NO_REPLICA,
        "server_error",
        "upstream_unavailable",
        request_id=exchange.request_id,
    )
    await _send_json(exchange.send, 503, body, extra=[(b"retry-after", b"1")])
