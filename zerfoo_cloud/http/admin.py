"""
The admin API: tenants, keys, usage and audit over HTTP, and SAML login
for tenant admins.

`AdminAPI` is a pure ASGI app serving JSON under ``/admin/`` and the SAML
login endpoints under ``/sso/saml/<tenant>/``. Mount it beside the
inference app (``AdminAPI.handles(path)`` says which paths are its own).
An admin key (only its SHA-256 hash is configured) may do everything; a
tenant admin signed in through the tenant's IdP gets a `SessionSigner`
session that may read only its own tenant, its usage and its audit log, and
rotate its own key. Every call is audited; errors use OpenAI's error shape.
See ``docs/admin.md`` and ``docs/openapi.yaml``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from zerfoo_cloud._asgi import acknowledge_lifespan
from zerfoo_cloud._openai_error import SERVER_ERROR_MESSAGE
from zerfoo_cloud._redacted import REDACTED
from zerfoo_cloud.audit import AuditAction, AuditEntry
from zerfoo_cloud.errors import (
    CloudError,
    InvalidConfigError,
    SessionError,
    StoreError,
    TenantExistsError,
    TenantNotFoundError,
)
from zerfoo_cloud.http._admin_http import (
    Disconnected,
    HTTPProblem,
    Message,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    audit_result,
    empty_response,
    error_response,
    json_response,
    parse_json_object,
    parse_query,
    read_body,
    send_response,
)
from zerfoo_cloud.http._admin_sso import (
    REQUEST_COOKIE,
    SESSION_COOKIE,
    SAMLLogin,
    check_providers,
)
from zerfoo_cloud.http._sessions import Session, SessionSigner
from zerfoo_cloud.metering import SUMMARY_KEYS
from zerfoo_cloud.stores.protocols import TenantListingBillingStore
from zerfoo_cloud.tenants import (
    TENANT_ID_PATTERN,
    TenantConfig,
    generate_api_key,
    hash_api_key,
)

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.audit import AuditLogger
    from zerfoo_cloud.metering import UsageSummary
    from zerfoo_cloud.sso import SAMLProvider
    from zerfoo_cloud.tenants import TenantManager, TenantRecord

__all__ = [
    "DEFAULT_AUDIT_LIMIT",
    "DEFAULT_MAX_BODY",
    "DEFAULT_USAGE_DAYS",
    "MAX_AUDIT_LIMIT",
    "SESSION_COOKIE",
    "AdminAPI",
    "Session",
    "SessionSigner",
    "UsageMeter",
]

_log = logging.getLogger("zerfoo_cloud.http.admin")

#: Request bodies larger than this (1 MiB) are refused with 413 by default.
DEFAULT_MAX_BODY = 1 << 20
#: Usage and audit queries without ``since`` cover this many days.
DEFAULT_USAGE_DAYS = 30
#: Audit queries return this many entries unless ``limit`` says otherwise.
DEFAULT_AUDIT_LIMIT = 100
#: The largest ``limit`` of an audit query.
MAX_AUDIT_LIMIT = 1000
#: The largest ``max_body`` accepted (64 MiB).
MAX_MAX_BODY = 64 << 20

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_HEX64 = re.compile(r"[0-9a-f]{64}")
#: API keys an admin chooses: long enough to guess, short enough to store.
_API_KEY = re.compile(r"[A-Za-z0-9._~+/=-]{16,256}")
_SAFE_PATH = re.compile(r"[A-Za-z0-9/._:@~-]{1,512}")
# API keys of this library and OpenAI-style services, as the audit module
# recognises them: never written to an audit entry.
_KEY_SHAPED = re.compile(
    r"(?<![A-Za-z0-9])(?:zc|sk)-[A-Za-z0-9_\-]{16,}", re.IGNORECASE
)
_MAX_AUDIT_SEGMENTS = 8
_ROUTE_WORDS = frozenset({"", "admin", "tenants", "rotate-key", "usage", "audit"})
_RESOURCE_SUFFIX = {"rotate": "/key", "usage": "/usage", "audit": "/audit"}
_CHALLENGE = ("www-authenticate", 'Bearer realm="zerfoo-cloud admin"')
_MAX_MESSAGE = 400
_TENANT_FIELDS = ("rate_limit", "token_budget", "max_concurrent_requests")
_METHOD_ACTIONS = {
    "POST": AuditAction.CREATE,
    "PUT": AuditAction.UPDATE,
    "PATCH": AuditAction.UPDATE,
    "DELETE": AuditAction.DELETE,
}


@runtime_checkable
class UsageMeter(Protocol):
    """
    **Protocol**: What the admin API needs of a `zerfoo_cloud.TokenMeter`.

    .. versionadded:: 0.1.0
    """

    def summary(
        self, tenant_id: str, start: datetime, end: datetime, by: Sequence[str]
    ) -> Sequence[UsageSummary]:
        """
        Total the tenant's tokens and requests in ``[start, end]``, grouped
        by the keys in *by* (``"model"``, ``"day"``).
        """


@attrs.frozen
class _Principal:
    """
    Who is calling: an admin key (*tenant_id* ``None``) or a tenant session
    bound to one *incarnation* of its tenant.
    """

    tenant_id: str | None
    actor: str
    incarnation: str = ""


@attrs.frozen
class _Op:
    """
    A matched admin route: what it does, on which tenant, and who may.
    """

    name: str | None
    action: AuditAction
    tenant: str | None = None
    own: bool = False
    body: bool = False
    allow: tuple[str, ...] = ()


_ROUTES: dict[str, dict[str, tuple[str, AuditAction, bool, bool]]] = {
    # suffix -> method -> (operation, audit action, own tenant allowed, body)
    "": {
        "GET": ("list", AuditAction.LIST, False, False),
        "POST": ("create", AuditAction.CREATE, False, True),
    },
    "/": {
        "GET": ("get", AuditAction.LIST, True, False),
        "PATCH": ("update", AuditAction.UPDATE, False, True),
        "DELETE": ("delete", AuditAction.DELETE, False, False),
    },
    "/rotate-key": {"POST": ("rotate", AuditAction.UPDATE, True, False)},
    "/usage": {"GET": ("usage", AuditAction.LIST, True, False)},
    "/audit": {"GET": ("audit", AuditAction.LIST, True, False)},
}


def _match(request: Request) -> _Op:
    segments = request.segments
    fallback = _METHOD_ACTIONS.get(request.method, AuditAction.LIST)
    if segments[:2] != ("admin", "tenants"):
        return _Op(None, fallback)
    rest = segments[2:]
    tenant = rest[0] if rest else None
    if not rest:
        suffix = ""
    elif len(rest) == 1:
        suffix = "/"
    elif len(rest) == 2:  # noqa: PLR2004 - /admin/tenants/{id}/{what}
        suffix = "/" + rest[1]
    else:
        return _Op(None, fallback)
    methods = _ROUTES.get(suffix)
    if methods is None or tenant == "":
        return _Op(None, fallback)
    found = methods.get(request.method)
    if found is None:
        return _Op(None, fallback, tenant, allow=tuple(methods))
    name, action, own, body = found
    return _Op(name, action, tenant, own, body, tuple(methods))


def _valid_tenant(value: object) -> str | None:
    if isinstance(value, str) and TENANT_ID_PATTERN.fullmatch(value):
        return value
    return None


def _route_label(request: Request) -> str:
    """
    The route of *request* with its tenant segment left out (for logs).
    """
    segments = list(request.segments)
    if len(segments) > 2:  # noqa: PLR2004 - /admin/tenants/{id}, /sso/saml/{id}
        segments[2] = "{tenant}"
    return "/" + "/".join(segments[:4])


def _clip(message: str) -> str:
    return (
        message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "…"
    )


def _when(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def _tenant_json(record: TenantRecord) -> dict[str, Any]:
    return {
        "object": "tenant",
        "id": record.id,
        "rate_limit": record.rate_limit,
        "token_budget": record.token_budget,
        "max_concurrent_requests": record.max_concurrent_requests,
        "model_allow_list": list(record.model_allow_list),
        "key_id": record.key_id,
        "created_at": _when(record.created_at),
        "updated_at": _when(record.updated_at),
    }


def _check_fields(
    data: Mapping[str, Any], allowed: Iterable[str], required: Iterable[str] = ()
) -> None:
    known = tuple(allowed)
    for name in data:
        if name not in known:
            msg = f"unknown field {_clip(name)!r}; known: {', '.join(known)}"
            raise HTTPProblem(400, "unknown_field", msg, param=_clip(name))
    for name in required:
        if name not in data:
            msg = f"the field {name!r} is required"
            raise HTTPProblem(400, "missing_field", msg, param=name)


def _int_field(data: Mapping[str, Any], name: str) -> int:
    value = data[name]
    if isinstance(value, float) and value.is_integer():
        # JSON has one number type: 5.0 is the integer 5.
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{name} must be an integer"
        raise HTTPProblem(400, "invalid_field", msg, param=name)
    return value


def _models_field(data: Mapping[str, Any]) -> list[str]:
    value = data["model_allow_list"]
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        msg = "model_allow_list must be a list of model names"
        raise HTTPProblem(400, "invalid_field", msg, param="model_allow_list")
    return value


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,32}))?)?)?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))?"
)
_FAR = datetime.max.replace(tzinfo=timezone.utc)


def _parse_time(params: Mapping[str, str], name: str) -> datetime | None:
    """
    Read an RFC 3339 / ISO 8601 time; no offset means UTC, no time midnight.
    """
    text = params.get(name)
    if text is None:
        return None
    found = _RFC3339.fullmatch(text)
    msg = f"{name} must be an ISO 8601 time such as 2025-01-31T00:00:00Z"
    if found is None:
        raise HTTPProblem(400, "invalid_parameter", msg, param=name)
    year, month, day, hour, minute, second, fraction, _, sign, oh, om = found.groups()
    try:
        offset = timezone(
            timedelta(hours=int(oh), minutes=int(om)) * (-1 if sign == "-" else 1)
            if sign
            else timedelta(0)
        )
        moment = datetime(
            max(int(year), 1),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            min(int(second or 0), 59),  # a leap second counts as :59
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=offset,
        )
    except ValueError:
        raise HTTPProblem(400, "invalid_parameter", msg, param=name) from None
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        # Only the first and the last day of the calendar get here.
        return _EPOCH if moment.year < _EPOCH.year else _FAR


def _time_range(params: Mapping[str, str], now: datetime) -> tuple[datetime, datetime]:
    until = _parse_time(params, "until") or now
    since = _parse_time(params, "since")
    # Stores key records by Unix time: nothing is older than the epoch.
    until = max(until, _EPOCH)
    if since is None:
        since = until - timedelta(days=DEFAULT_USAGE_DAYS)
    # A range that ends before it starts is empty, not an error.
    return max(since, _EPOCH), until


def _group_by(params: Mapping[str, str]) -> tuple[str, ...]:
    text = params.get("by", ",".join(SUMMARY_KEYS))
    keys = tuple(text.split(",")) if text else ()
    if any(k not in SUMMARY_KEYS for k in keys) or len(set(keys)) != len(keys):
        msg = "by must list model and/or day, comma-separated, each at most once (or be empty)"
        raise HTTPProblem(400, "invalid_parameter", msg, param="by")
    return keys


def _limit(params: Mapping[str, str]) -> int:
    text = params.get("limit", str(DEFAULT_AUDIT_LIMIT))
    if not (text.isdigit() and text.isascii()) or not 1 <= int(text) <= MAX_AUDIT_LIMIT:
        msg = f"limit must be an integer from 1 to {MAX_AUDIT_LIMIT}"
        raise HTTPProblem(400, "invalid_parameter", msg, param="limit")
    return int(text)


def _row(
    model: str | None, day: date | None, input_tokens: int, output_tokens: int, n: int
) -> dict[str, Any]:
    return {
        "model": model,
        "day": None if day is None else day.isoformat(),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "requests": n,
    }


def _entry_json(entry: AuditEntry) -> dict[str, Any]:
    data: dict[str, Any] = {
        "timestamp": entry.timestamp,
        "tenant_id": entry.tenant_id,
        "action": entry.action.value,
        "result": entry.result.value,
        "resource": entry.resource,
        "status_code": entry.status_code,
        "method": entry.method,
        "path": entry.path,
        "remote_addr": entry.remote_addr,
    }
    # Stores that chain entries also give their place in the chain.
    for name in ("seq", "prev_hash", "hash"):
        value = getattr(entry, name, None)
        if value is not None:
            data[name] = value
    return data


#: Status and error code of each library error an operation may raise,
#: looked up along the exception's MRO.
_ERROR_STATUS: dict[type[CloudError], tuple[int, str]] = {
    InvalidConfigError: (400, "invalid_field"),
    TenantNotFoundError: (404, "tenant_not_found"),
    TenantExistsError: (409, "tenant_exists"),
    StoreError: (503, "store_unavailable"),
}


def _problem_for(exc: CloudError) -> HTTPProblem:
    for cls in type(exc).__mro__:
        found = _ERROR_STATUS.get(cls)
        if found is not None:
            param = getattr(exc, "field", None)
            return HTTPProblem(*found, _clip(str(exc)), param=param)
    raise exc


class AdminAPI:
    """
    The admin API and SAML login, as a pure ASGI app.

    Routes (JSON in and out; errors as ``{"error": {"message", "type",
    "param", "code"}}``):

    - ``GET /admin/tenants`` and ``POST /admin/tenants`` (201, with the new
      ``api_key``, shown only this once);
    - ``GET|PATCH|DELETE /admin/tenants/{id}``;
    - ``POST /admin/tenants/{id}/rotate-key`` (the new ``api_key``, once);
    - ``GET /admin/tenants/{id}/usage?since=&until=&by=model,day``;
    - ``GET /admin/tenants/{id}/audit?since=&until=&limit=``;
    - ``GET /sso/saml/{tenant}/login``, ``POST /sso/saml/{tenant}/acs`` and
      ``GET /sso/saml/{tenant}/metadata``.

    ``Authorization: Bearer <admin key>`` may do everything. A tenant-admin
    session (the ``zc_session`` cookie, or its token as the bearer) may only
    read its own tenant, usage and audit, and rotate its own key; anything
    else is 403. Missing or wrong credentials are 401. Every ``/admin`` call
    is audited (``create``/``update``/``delete``/``list``, or ``auth`` for a
    401) with its result; keys, tokens and bodies never are. Store calls and
    SAML checks run in worker threads, so the event loop never waits on a
    disk.

    Args:
        tenants: the tenant manager the API changes.
        meter: where usage totals come from (a `zerfoo_cloud.TokenMeter`);
            without it the usage route answers 404.
        audit: where calls are audited; without it nothing is audited and
            the audit route answers 404.
        admin_key_hashes: SHA-256 hex digests of the admin keys
            (`zerfoo_cloud.hash_api_key`); the keys themselves are never
            given to the API.
        sessions: signs and checks tenant-admin sessions; without it only
            admin keys are accepted. Required with *sso*.
        sso: tenant id -> that tenant's `zerfoo_cloud.SAMLProvider` (with
            ``sp_entity_id`` and ``acs_url`` set, the ACS URL ending in
            ``/sso/saml/<tenant>/acs``).
        clock: the time source, Unix seconds (default times of queries).
        max_body: the largest request body, in bytes (413 past it).

    Raises:
        InvalidConfigError: an admin key hash that is not a SHA-256 hex
            digest, *max_body* out of range, *sso* without *sessions*, or a
            provider that cannot build AuthnRequests or is filed under
            another tenant.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        tenants: TenantManager,
        *,
        meter: UsageMeter | None = None,
        audit: AuditLogger | None = None,
        admin_key_hashes: Iterable[str] = (),
        sessions: SessionSigner | None = None,
        sso: Mapping[str, SAMLProvider] | None = None,
        clock: Clock = time.time,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        if isinstance(admin_key_hashes, str):
            admin_key_hashes = (admin_key_hashes,)
        hashes: list[bytes] = []
        for digest in admin_key_hashes:
            if not isinstance(digest, str) or not _HEX64.fullmatch(digest.lower()):
                # The value is left out of the message: it may be a raw key.
                msg = (
                    "admin_key_hashes holds SHA-256 hex digests of the admin "
                    "keys (zerfoo_cloud.hash_api_key(key)), not the keys"
                )
                raise InvalidConfigError(msg, field="admin_key_hashes")
            hashes.append(bytes.fromhex(digest))
        if (
            isinstance(max_body, bool)
            or not isinstance(max_body, int)
            or not 1 <= max_body <= MAX_MAX_BODY
        ):
            msg = f"max_body must be from 1 to {MAX_MAX_BODY} bytes, not {max_body!r}"
            raise InvalidConfigError(msg, field="max_body")
        self.tenants = tenants
        self.meter = meter
        self.audit = audit
        self.sessions = sessions
        self.clock = clock
        self.max_body = max_body
        self._admin_hashes = tuple(hashes)
        providers = check_providers(sso or {}, sessions)
        self._sso = (
            SAMLLogin(
                providers,
                sessions,
                audit=self._log,
                incarnation=self._incarnation_of,
            )
            if providers and sessions is not None
            else None
        )
        self._ops: dict[str, Callable[[_Op, Request, bytes, _Audit], Response]] = {
            "list": self._list,
            "create": self._create,
            "get": self._get,
            "update": self._update,
            "delete": self._delete,
            "rotate": self._rotate,
            "usage": self._usage,
            "audit": self._audit_query,
        }

    def __repr__(self) -> str:
        return (
            f"<AdminAPI admin_keys={len(self._admin_hashes)} "
            f"sessions={self.sessions is not None} "
            f"sso={sorted(self._sso.providers) if self._sso else []}>"
        )

    @staticmethod
    def handles(path: str) -> bool:
        """
        Whether *path* belongs to this app (``/admin/...`` or ``/sso/...``).
        """
        return path.startswith(("/admin/", "/sso/")) or path == "/admin"

    # -- ASGI -------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """
        Serve one ASGI connection (``http``; ``lifespan`` is acknowledged,
        ``websocket`` refused).
        """
        kind = scope["type"]
        if kind == "lifespan":
            await acknowledge_lifespan(receive, send)
            return
        if kind != "http":
            close: Message = {"type": "websocket.close", "code": 1008}
            await send(close)
            return
        request = Request.from_scope(scope)
        try:
            response = await self._respond(request, receive)
        except Disconnected:
            return
        except Exception:
            _log.exception(
                "admin API failed on %s %s",
                request.method,
                _route_label(request),
            )
            await send_response(
                send, error_response(500, "internal_error", SERVER_ERROR_MESSAGE)
            )
            # Re-raised so the server logs it too; the client has its answer.
            raise
        await send_response(send, response)

    async def _respond(self, request: Request, receive: Receive) -> Response:
        top = request.segments[:1]
        if top in (("admin",), ("sso",)):
            repeated = self._repeated_credential(request)
            if repeated is not None:
                return await asyncio.to_thread(self._refuse_repeated, request, repeated)
        if top == ("admin",):
            return await self._admin(request, receive)
        if top == ("sso",) and request.segments[1:2] == ("saml",) and self._sso:
            return await self._saml(self._sso, request, receive)
        return error_response(404, "not_found", "no such route")

    async def _saml(
        self, sso: SAMLLogin, request: Request, receive: Receive
    ) -> Response:
        try:
            endpoint, provider = sso.route(request)
            if endpoint == "metadata":
                return sso.metadata(provider)
            if endpoint == "login":
                return sso.login(request, provider)
        except HTTPProblem as problem:
            return problem.response()
        try:
            body = await read_body(request, receive, self.max_body)
        except HTTPProblem as problem:
            return await asyncio.to_thread(
                sso.audited, request, provider, problem.response()
            )
        return await asyncio.to_thread(sso.acs, request, provider, body)

    async def _admin(self, request: Request, receive: Receive) -> Response:
        op = _match(request)
        record = _Audit(op)
        try:
            record.principal = self._authenticate(request)
            self._authorize(record.principal, op)
            body = await read_body(request, receive, self.max_body) if op.body else b""
        except HTTPProblem as problem:
            response = problem.response()
            await asyncio.to_thread(self._record, request, record, response)
            return response
        return await asyncio.to_thread(self._execute, request, op, body, record)

    # -- authentication and authorization ---------------------------------

    @staticmethod
    def _repeated_credential(request: Request) -> str | None:
        """
        The credential *request* sends more than once (a header, or a
        session or pending-login cookie), if any: readers that take the
        first and readers that take the last would see different callers.
        """
        if request.repeated:
            return request.repeated[0]
        for name in (SESSION_COOKIE, REQUEST_COOKIE):
            if request.cookie_count(name) > 1:
                return f"cookie {name}"
        return None

    def _refuse_repeated(self, request: Request, what: str) -> Response:
        """
        Answer 400 to a request with a repeated credential, and audit it as
        an ``auth`` error (runs in a worker thread).
        """
        response = error_response(
            400,
            "duplicate_credentials",
            f"the request sends {what} more than once; send it exactly once",
            param=what,
        )
        segments = request.segments
        tenant = _valid_tenant(segments[2]) if len(segments) > 2 else None  # noqa: PLR2004
        if tenant is not None and self._secret(tenant):
            tenant = None
        self._log(
            AuditEntry(
                tenant_id=tenant or "",
                action=AuditAction.AUTH,
                result=audit_result(400),
                resource="credentials",
                status_code=400,
                method=request.method,
                path=self._audit_path(request),
                remote_addr=request.client,
            )
        )
        return response

    def _authenticate(self, request: Request) -> _Principal:
        header = request.headers.get("authorization")
        if header is None:
            cookie = request.cookie(SESSION_COOKIE)
            if cookie and self.sessions is not None:
                return self._session(cookie)
            msg = (
                "no credentials: send Authorization: Bearer <admin key>, or sign "
                "in at /sso/saml/<tenant>/login"
            )
            raise HTTPProblem(401, "missing_credentials", msg, headers=[_CHALLENGE])
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            msg = "use Authorization: Bearer <admin key or session token>"
            raise HTTPProblem(401, "invalid_authorization", msg, headers=[_CHALLENGE])
        digest = bytes.fromhex(hash_api_key(token))
        matched: bytes | None = None
        # Every hash is compared, so the time taken says nothing about which.
        for known in self._admin_hashes:
            if hmac.compare_digest(known, digest):
                matched = known
        if matched is not None:
            return _Principal(None, "admin:" + matched.hex()[:8])
        if self.sessions is not None:
            return self._session(token)
        raise _invalid_credentials()

    def _session(self, token: str) -> _Principal:
        assert self.sessions is not None
        try:
            session = self.sessions.verify(token)
        except SessionError as exc:
            if exc.reason == "expired":
                raise HTTPProblem(
                    401, "session_expired", str(exc), headers=[_CHALLENGE]
                ) from exc
            raise _invalid_credentials() from exc
        return _Principal(
            session.tenant_id, "sso:" + session.subject, session.incarnation
        )

    @staticmethod
    def _authorize(principal: _Principal, op: _Op) -> None:
        if op.name is None:
            if op.allow:
                msg = f"use {', '.join(op.allow)} here"
                raise HTTPProblem(
                    405,
                    "method_not_allowed",
                    msg,
                    headers=[("allow", ", ".join(op.allow))],
                )
            raise HTTPProblem(404, "not_found", "no such admin route")
        if principal.tenant_id is None:
            return
        if op.own and op.tenant == principal.tenant_id:
            return
        msg = (
            f"a session for tenant {principal.tenant_id!r} may only read that "
            "tenant, its usage and audit log, and rotate its key"
        )
        raise HTTPProblem(403, "forbidden", msg)

    # -- operations (run in a worker thread) ------------------------------

    def _execute(
        self, request: Request, op: _Op, body: bytes, record: _Audit
    ) -> Response:
        assert op.name is not None
        try:
            self._check_incarnation(record.principal)
            response = self._ops[op.name](op, request, body, record)
        except HTTPProblem as problem:
            response = problem.response()
        except CloudError as exc:
            if isinstance(exc, StoreError):
                _log.error("admin API store failure: %s", exc)
            response = _problem_for(exc).response()
        self._record(request, record, response)
        return response

    def _incarnation_of(self, tenant_id: str) -> str | None:
        """
        The current incarnation of *tenant_id*, ``None`` if there is no such
        tenant (runs in a worker thread).
        """
        try:
            record = self.tenants.store.get(tenant_id)
        except StoreError as exc:
            _log.error("admin API store failure: %s", exc)
            raise _problem_for(exc) from exc
        return None if record is None else record.incarnation

    def _check_incarnation(self, principal: _Principal | None) -> None:
        """
        Refuse (401) a session whose tenant was deleted since it was issued,
        whether or not a tenant of the same id was created again.
        """
        if principal is None or principal.tenant_id is None:
            return
        current = self.tenants.store.get(principal.tenant_id)
        if (
            current is None
            or not principal.incarnation
            or not hmac.compare_digest(
                current.incarnation.encode(), principal.incarnation.encode()
            )
        ):
            msg = "the session's tenant was deleted since it signed in; sign in again"
            raise HTTPProblem(401, "session_revoked", msg, headers=[_CHALLENGE])

    def _record(self, request: Request, record: _Audit, response: Response) -> None:
        status = response.status
        action = AuditAction.AUTH if status == 401 else record.op.action  # noqa: PLR2004
        tenant = _valid_tenant(record.tenant or record.op.tenant)
        if tenant is not None and self._secret(tenant):
            tenant = None
        if tenant is None:
            resource = "tenants"
        else:
            resource = f"tenant/{tenant}" + _RESOURCE_SUFFIX.get(
                record.op.name or "", ""
            )
        if record.principal is not None:
            resource += f" by {record.principal.actor}"
        self._log(
            AuditEntry(
                tenant_id=tenant or "",
                action=action,
                result=audit_result(status),
                resource=resource,
                status_code=status,
                method=request.method,
                path=self._audit_path(request),
                remote_addr=request.client,
            )
        )

    def _audit_path(self, request: Request) -> str:
        """
        The request path, with every segment that is or looks like a
        secret replaced; long or odd paths are cut to their first segment.
        """
        segments = request.segments
        if len(segments) > _MAX_AUDIT_SEGMENTS or not _SAFE_PATH.fullmatch(
            request.path
        ):
            return "/" + segments[0] + "/…"
        return "/" + "/".join(
            s if s in _ROUTE_WORDS or not self._secret(s) else REDACTED
            for s in segments
        )

    def _secret(self, text: str) -> bool:
        """
        Whether *text* is, or has the shape of, a key or session token: it
        must never be written to the audit log.
        """
        if _KEY_SHAPED.search(text) or (
            text.startswith("v1.") and text.count(".") == 2  # noqa: PLR2004
        ):
            return True
        digest_hex = hash_api_key(text)
        digest = bytes.fromhex(digest_hex)
        if any(hmac.compare_digest(known, digest) for known in self._admin_hashes):
            return True
        try:
            return self.tenants.store.get_by_key_hash(digest_hex) is not None
        except CloudError:
            return True

    def _log(self, entry: AuditEntry) -> None:
        if self.audit is None:
            return
        try:
            self.audit.log(entry)
        except CloudError as exc:
            # The operation is done (a new key must still reach its caller);
            # the failure is reported, never the entry's contents.
            _log.error("audit entry not written: %s", exc)

    def _list(self, op: _Op, request: Request, body: bytes, record: _Audit) -> Response:
        data = [_tenant_json(r) for r in self.tenants.records()]
        return json_response(200, {"object": "list", "data": data})

    def _get(self, op: _Op, request: Request, body: bytes, record: _Audit) -> Response:
        assert op.tenant is not None
        return json_response(200, _tenant_json(self.tenants.get(op.tenant).record))

    def _create(
        self, op: _Op, request: Request, body: bytes, record: _Audit
    ) -> Response:
        data = parse_json_object(body)
        _check_fields(
            data,
            ("id", "api_key", *_TENANT_FIELDS, "model_allow_list"),
            ("id", "rate_limit", "token_budget"),
        )
        tenant_id = _valid_tenant(data["id"])
        if tenant_id is None:
            msg = (
                "id must be 1 to 128 letters, digits and . _ - : @, starting with "
                "a letter or digit"
            )
            raise HTTPProblem(400, "invalid_field", msg, param="id")
        record.tenant = tenant_id
        api_key = data.get("api_key")
        if "api_key" not in data:
            api_key = generate_api_key(self.tenants.key_prefix)
        elif not isinstance(api_key, str) or not _API_KEY.fullmatch(api_key):
            msg = (
                "api_key must be 16 to 256 letters, digits and . _ ~ + / = -; "
                "leave it out to have one generated"
            )
            raise HTTPProblem(400, "invalid_field", msg, param="api_key")
        config = TenantConfig(
            id=tenant_id,
            api_key=api_key,
            rate_limit=_int_field(data, "rate_limit"),
            token_budget=_int_field(data, "token_budget"),
            max_concurrent_requests=_int_field(data, "max_concurrent_requests")
            if "max_concurrent_requests" in data
            else 0,
            model_allow_list=_models_field(data) if "model_allow_list" in data else (),
        )
        tenant = self.tenants.create(config)
        return json_response(
            201,
            {**_tenant_json(tenant.record), "api_key": api_key},
            headers=[("location", f"/admin/tenants/{tenant_id}")],
        )

    def _update(
        self, op: _Op, request: Request, body: bytes, record: _Audit
    ) -> Response:
        assert op.tenant is not None
        data = parse_json_object(body)
        _check_fields(data, (*_TENANT_FIELDS, "model_allow_list"))
        if not data:
            msg = f"nothing to change: send any of {', '.join(_TENANT_FIELDS)}, model_allow_list"
            raise HTTPProblem(400, "missing_field", msg)
        changes: dict[str, Any] = {
            n: _int_field(data, n) for n in _TENANT_FIELDS if n in data
        }
        if "model_allow_list" in data:
            changes["model_allow_list"] = _models_field(data)
        tenant = self.tenants.update(op.tenant, **changes)
        return json_response(200, _tenant_json(tenant.record))

    def _delete(
        self, op: _Op, request: Request, body: bytes, record: _Audit
    ) -> Response:
        assert op.tenant is not None
        self.tenants.delete(op.tenant)
        return empty_response(204)

    def _rotate(
        self, op: _Op, request: Request, body: bytes, record: _Audit
    ) -> Response:
        assert op.tenant is not None
        principal = record.principal
        # A session re-keys only the incarnation it was issued for, checked in
        # the store's transaction: never a tenant created again meanwhile.
        incarnation = (
            principal.incarnation
            if principal is not None and principal.tenant_id is not None
            else None
        )
        key = self.tenants.rotate_key(op.tenant, incarnation=incarnation)
        return json_response(
            200,
            {
                "object": "tenant.key",
                "id": op.tenant,
                "api_key": key,
                "key_id": hash_api_key(key)[:8],
            },
        )

    def _range(
        self, op: _Op, request: Request, extra: str, store: object, missing: str
    ) -> tuple[str, dict[str, str], datetime, datetime, bool]:
        """
        The tenant, query parameters, time range and whether the tenant was
        deleted, of a usage or audit query; 404 when *store* is not
        configured or the tenant is unknown (neither current nor billed).
        """
        assert op.tenant is not None
        params = parse_query(request, ("since", "until", extra))
        since, until = _time_range(params, _when(self.clock()))
        if store is None:
            raise HTTPProblem(
                404, f"{missing}_not_configured", f"no {missing} store is configured"
            )
        deleted = self.tenants.store.get(op.tenant) is None
        if deleted and op.tenant not in self._billed_tenants():
            raise TenantNotFoundError(op.tenant)
        return op.tenant, params, since, until, deleted

    def _billed_tenants(self) -> list[str]:
        """
        Every tenant the meter's store holds records of (deleted ones too),
        when the store can name them.
        """
        billing = getattr(self.meter, "store", None)
        if isinstance(billing, TenantListingBillingStore):
            return billing.tenant_ids()
        return []

    def _usage(
        self, op: _Op, request: Request, body: bytes, record: _Audit
    ) -> Response:
        tenant_id, params, since, until, deleted = self._range(
            op, request, "by", self.meter, "usage"
        )
        by = _group_by(params)
        if since > until:
            rows = []
        else:
            assert self.meter is not None
            rows = [
                _row(r.model, r.day, r.input_tokens, r.output_tokens, r.requests)
                for r in self.meter.summary(tenant_id, since, until, by)
            ]
        totals = _row(
            None,
            None,
            sum(r["input_tokens"] for r in rows),
            sum(r["output_tokens"] for r in rows),
            sum(r["requests"] for r in rows),
        )
        del totals["model"], totals["day"]
        return json_response(
            200,
            {
                "object": "usage",
                "tenant_id": tenant_id,
                "deleted": deleted,
                "since": since,
                "until": until,
                "by": list(by),
                "data": rows,
                "totals": totals,
            },
        )

    def _audit_query(
        self, op: _Op, request: Request, body: bytes, record: _Audit
    ) -> Response:
        tenant_id, params, since, until, deleted = self._range(
            op, request, "limit", self.audit, "audit"
        )
        limit = _limit(params)
        assert self.audit is not None
        entries = self.audit.query(tenant_id, since, until) if since <= until else []
        return json_response(
            200,
            {
                "object": "list",
                "tenant_id": tenant_id,
                "deleted": deleted,
                "since": since,
                "until": until,
                "data": [_entry_json(e) for e in entries[-limit:]],
                "truncated": len(entries) > limit,
            },
        )


@attrs.define
class _Audit:
    """
    What the audit entry of one admin call will say (filled in as it runs).
    """

    op: _Op
    principal: _Principal | None = None
    tenant: str | None = None


def _invalid_credentials() -> HTTPProblem:
    return HTTPProblem(
        401,
        "invalid_credentials",
        "the admin key or session token is not valid",
        headers=[_CHALLENGE],
    )
