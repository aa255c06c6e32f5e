"""
Signed, short-lived session tokens for tenant admins, signed by itsdangerous.

A token is ``v1.<payload>.<signature>``: the payload is compact JSON in
URL-safe base64 (no padding); the signature is itsdangerous's `Signer`
(HMAC-SHA256, key derived by HMAC from the secret and the token's purpose as
salt) over ``v1.<payload>``, so a token made for one purpose (a session) is
never accepted for another (the state of a pending SAML login). Tokens carry
their expiry; nothing is stored on the server, so every worker process that
shares the secret accepts them.

A session has an absolute end (``x``: the signer's ``ttl`` after sign-in,
or sooner) and, with ``idle`` set, an idle end (``e``): each use may
`SessionSigner.refresh` the token, moving ``e`` to ``idle`` seconds ahead
but never past ``x``. The payload also names the person's `Role` (``r``),
how they signed in (``v``: ``saml``, ``oidc`` or ``admin-key``), their
e-mail (``m``) and when the session was issued (``a``: a tenant's people
signed out later refuse it, see `TenantManager.sign_out`); fields at their defaults are left out, so a tenant-admin
token of a signer without ``idle`` is what earlier versions made.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from itsdangerous import BadData, Signer, base64_decode, base64_encode

from zerfoo_cloud.errors import InvalidConfigError, SessionError
from zerfoo_cloud.sso.roles import Role
from zerfoo_cloud.tenants import TENANT_ID_PATTERN

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock

__all__ = [
    "MAX_INCARNATION_LENGTH",
    "MAX_SESSION_TTL",
    "MAX_SUBJECT_LENGTH",
    "MAX_TOKEN_LENGTH",
    "MIN_SECRET_BYTES",
    "SIGN_IN_METHODS",
    "Session",
    "SessionSigner",
    "state_codec",
]

#: A session secret has at least this many bytes (256 bits).
MIN_SECRET_BYTES = 32
#: Sessions last at most this many seconds (one day).
MAX_SESSION_TTL = 86_400
#: A session's subject (the SAML NameID) has at most this many characters.
MAX_SUBJECT_LENGTH = 512
#: A tenant incarnation stamp has at most this many characters.
MAX_INCARNATION_LENGTH = 64
#: Longer tokens are refused unread; every token this module makes is shorter.
MAX_TOKEN_LENGTH = 4096
#: How a person may have signed in: the ``via`` of a `Session`.
SIGN_IN_METHODS = ("saml", "oidc", "admin-key")

_VERSION = "v1"
_TOKEN = re.compile(r"v1\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")
_SESSION_PURPOSE = "session"


def _malformed() -> SessionError:
    return SessionError("the session token is malformed", reason="malformed")


def _decode(text: str) -> bytes:
    """
    The bytes of canonical unpadded URL-safe base64 *text*: no two tokens
    may mean the same, so an encoding with other padding bits is refused.
    """
    try:
        raw = base64_decode(text)
    except BadData as exc:
        raise _malformed() from exc
    if base64_encode(raw).decode("ascii") != text:
        raise _malformed()
    return raw


def _check_secret(secret: object) -> bytes:
    if not isinstance(secret, bytes):
        msg = "the session secret must be bytes"
        raise InvalidConfigError(msg, field="secret")
    if len(secret) < MIN_SECRET_BYTES:
        msg = (
            f"the session secret must have at least {MIN_SECRET_BYTES} bytes, "
            f"not {len(secret)}; make one with secrets.token_bytes(32)"
        )
        raise InvalidConfigError(msg, field="secret")
    return secret


class TokenCodec:
    """
    Signs and checks expiring payloads for one purpose, with one current
    secret and any number of previous ones (accepted, never used to sign).
    """

    __slots__ = ("_signer", "clock")

    def __init__(self, secrets: Iterable[bytes], purpose: str, clock: Clock) -> None:
        # itsdangerous signs with the last secret and accepts every one.
        self._signer = Signer(
            list(secrets)[::-1],
            salt=b"zerfoo-cloud/" + purpose.encode("ascii"),
            key_derivation="hmac",
            digest_method=hashlib.sha256,
        )
        self.clock = clock

    def dumps(self, payload: Mapping[str, Any]) -> str:
        """
        A signed token carrying *payload* (which holds its expiry, ``e``).
        """
        raw = json.dumps(
            payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False
        ).encode("utf-8")
        head = f"{_VERSION}.{base64_encode(raw).decode('ascii')}"
        return self._signer.sign(head).decode("ascii")

    def loads(self, token: object) -> dict[str, Any]:
        """
        Return the payload of *token*, checking its shape, signature and
        expiry (the ``e`` field, Unix seconds).

        Raises:
            SessionError: ``reason`` ``"malformed"``, ``"signature"`` or
                ``"expired"``.
        """
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
            raise _malformed()
        found = _TOKEN.fullmatch(token)
        if found is None:
            raise _malformed()
        _decode(found[2])
        raw = _decode(found[1])
        if not self._signer.validate(token):
            msg = "the session token's signature is invalid"
            raise SessionError(msg, reason="signature")
        try:
            payload = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:  # pragma: no cover
            # Only a holder of the key could sign such a payload.
            raise _malformed() from exc
        expires_at = payload.get("e") if isinstance(payload, dict) else None
        if isinstance(expires_at, bool) or not isinstance(expires_at, (int, float)):
            raise _malformed()  # pragma: no cover - signed
        if self.clock() >= expires_at:
            msg = "the session has expired; sign in again"
            raise SessionError(msg, reason="expired")
        assert isinstance(payload, dict)
        return payload


@attrs.frozen
class Session:
    """
    A verified session: a tenant admin or viewer, or an operator.

    Attributes:
        tenant_id: the only tenant this session may see (``""`` for an
            operator, who may see every tenant).
        subject: who signed in (the SAML NameID, the OIDC ``sub``, or the
            admin key's short fingerprint).
        expires_at: when the session ends unless used again, Unix seconds
            (the idle end; at most `absolute_expires_at`).
        incarnation: the ``TenantRecord.incarnation`` of the tenant when the
            session was issued; the session is worth nothing once the tenant
            is deleted, even if one with the same id is created again
            (empty for operators, and for tokens issued without one, which
            no tenant route accepts).
        role: what the session may do: a `Role` value (``"admin"``,
            ``"viewer"`` or ``"operator"``).
        via: how the person signed in, one of `SIGN_IN_METHODS`.
        email: the person's e-mail address, ``""`` when unknown.
        absolute_expires_at: when the session ends however busy it is.
        issued_at: when the person signed in, Unix seconds (0: unknown, a
            token of an earlier version; refused once its tenant signs
            people out).

    .. versionadded:: 0.1.0
    """

    tenant_id: str
    subject: str
    expires_at: float
    incarnation: str = ""
    role: str = Role.ADMIN.value
    via: str = "saml"
    email: str = ""
    absolute_expires_at: float = attrs.field()

    issued_at: float = 0.0

    @absolute_expires_at.default
    def _absolute(self) -> float:
        return self.expires_at

    @property
    def actor(self) -> str:
        """
        Who this is, as audit entries name them: ``<via>:<email or subject>``.
        """
        return f"{self.via}:{self.email or self.subject}"


def _check_identity(
    tenant_id: object, subject: object, incarnation: object, role: Role
) -> None:
    if role is Role.OPERATOR:
        if tenant_id != "" or incarnation != "":
            msg = "an operator session has no tenant and no incarnation"
            raise InvalidConfigError(msg, field="tenant_id")
    else:
        if not isinstance(tenant_id, str) or not TENANT_ID_PATTERN.fullmatch(tenant_id):
            msg = f"tenant id {tenant_id!r} is invalid"
            raise InvalidConfigError(msg, field="tenant_id")
        if (
            not isinstance(incarnation, str)
            or not 0 < len(incarnation) <= MAX_INCARNATION_LENGTH
        ):
            msg = f"the incarnation must be 1 to {MAX_INCARNATION_LENGTH} characters"
            raise InvalidConfigError(msg, field="incarnation")
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT_LENGTH:
        msg = f"the subject must be 1 to {MAX_SUBJECT_LENGTH} characters"
        raise InvalidConfigError(msg, field="subject")


def _check_seconds(value: object, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value <= MAX_SESSION_TTL
    ):
        msg = (
            f"{name} must be more than 0 and at most {MAX_SESSION_TTL} seconds, "
            f"not {value!r}"
        )
        raise InvalidConfigError(msg, field=name)
    return float(value)


class SessionSigner:
    """
    Issues and verifies signed, short-lived sessions.

    Tokens are HMAC-SHA256 signed and carry their tenant, subject, role,
    sign-in method and expiry; the server keeps no session state, so every
    process given the same *secret* accepts the same tokens. Verification
    compares in constant time and refuses expired, altered and foreign
    tokens.

    Args:
        secret: at least `MIN_SECRET_BYTES` random bytes
            (``secrets.token_bytes(32)``). Never shown in a repr.
        ttl: seconds a session lasts at most (its absolute expiry), more
            than 0 and at most `MAX_SESSION_TTL`.
        idle: seconds a session lasts without being used (`refresh`), more
            than 0 and at most *ttl*; ``None``: no idle expiry.
        clock: the time source, Unix seconds.
        previous_secrets: older secrets still accepted (never used to
            sign), so the secret can be rotated without ending every
            session at once.

    Raises:
        InvalidConfigError: a secret that is not bytes or is too short, or a
            *ttl* or *idle* out of range.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        secret: bytes,
        *,
        ttl: float = 3600,
        idle: float | None = None,
        clock: Clock = time.time,
        previous_secrets: Iterable[bytes] = (),
    ) -> None:
        secrets = [_check_secret(secret), *map(_check_secret, previous_secrets)]
        self.ttl = _check_seconds(ttl, "ttl")
        self.idle = None if idle is None else _check_seconds(idle, "idle")
        if self.idle is not None and self.idle > self.ttl:
            msg = f"idle ({idle!r} seconds) must not be longer than ttl ({ttl!r})"
            raise InvalidConfigError(msg, field="idle")
        self.clock = clock
        self._secrets = tuple(secrets)
        self._codec = TokenCodec(secrets, _SESSION_PURPOSE, clock)
        self._csrf = Signer(
            list(secrets)[::-1],
            salt=b"zerfoo-cloud/csrf",
            key_derivation="hmac",
            digest_method=hashlib.sha256,
        )

    def __repr__(self) -> str:
        idle = "" if self.idle is None else f" idle={self.idle:g}s"
        return f"<SessionSigner ttl={self.ttl:g}s{idle} keys={len(self._secrets)}>"

    def issue(
        self,
        tenant_id: str,
        subject: str,
        *,
        incarnation: str,
        expires_at: float | None = None,
        role: Role | str = Role.ADMIN,
        via: str = "saml",
        email: str = "",
    ) -> str:
        """
        Return a new session token for *subject*, valid for `ttl` seconds
        (`idle` without use), that may see only tenant *tenant_id* as it is
        now (every tenant for an operator).

        Args:
            tenant_id: the only tenant the session may see; ``""`` for an
                operator.
            subject: who signed in.
            incarnation: the tenant's ``TenantRecord.incarnation``; the
                admin API and console refuse the session once the tenant's
                differs (it was deleted, and perhaps created again). ``""``
                for an operator.
            expires_at: end the session at this Unix time instead, if that
                is sooner (the IdP's ``SessionNotOnOrAfter``).
            role: what the session may do (a `Role` or its value).
            via: how the person signed in, one of `SIGN_IN_METHODS`.
            email: the person's e-mail address, if known (at most
                `MAX_SUBJECT_LENGTH` characters).

        Raises:
            InvalidConfigError: a malformed tenant id (or one given to an
                operator), an empty subject or one over
                `MAX_SUBJECT_LENGTH` characters, an empty or overlong
                incarnation, an unknown *role* or *via*, or an overlong
                *email*.
        """
        try:
            role = Role(role)
        except ValueError as exc:
            names = ", ".join(r.value for r in Role)
            msg = f"role must be one of {names}, not {role!r}"
            raise InvalidConfigError(msg, field="role") from exc
        _check_identity(tenant_id, subject, incarnation, role)
        if via not in SIGN_IN_METHODS:
            msg = f"via must be one of {', '.join(SIGN_IN_METHODS)}, not {via!r}"
            raise InvalidConfigError(msg, field="via")
        if not isinstance(email, str) or len(email) > MAX_SUBJECT_LENGTH:
            msg = f"the e-mail address must be at most {MAX_SUBJECT_LENGTH} characters"
            raise InvalidConfigError(msg, field="email")
        now = self.clock()
        end = now + self.ttl
        if expires_at is not None:
            end = min(end, expires_at)
        return self._dumps(
            Session(
                tenant_id,
                subject,
                end,
                incarnation,
                role.value,
                via,
                email,
                absolute_expires_at=end,
                issued_at=now,
            )
        )

    def _dumps(self, session: Session) -> str:
        """
        The token of *session*, its idle end moved to `idle` seconds from
        now (never past its absolute end).
        """
        end = session.absolute_expires_at
        idle_end = end if self.idle is None else min(end, self.clock() + self.idle)
        payload: dict[str, Any] = {
            "t": session.tenant_id,
            "s": session.subject,
            "i": session.incarnation,
            "e": idle_end,
        }
        if idle_end != end:
            payload["x"] = end
        if session.role != Role.ADMIN.value:
            payload["r"] = session.role
        if session.via != "saml":
            payload["v"] = session.via
        if session.email:
            payload["m"] = session.email
        if session.issued_at:
            payload["a"] = session.issued_at
        return self._codec.dumps(payload)

    def refresh(self, session: Session) -> str:
        """
        A new token for *session*, its idle expiry starting again now (its
        absolute expiry unchanged).
        """
        return self._dumps(session)

    def verify(self, token: str) -> Session:
        """
        Return the session *token* stands for.

        Raises:
            SessionError: the token is malformed (``reason="malformed"``),
                not signed by this signer's secrets (``"signature"``), or
                expired (``"expired"``: at or after its idle or absolute
                end).
        """
        payload = self._codec.loads(token)
        tenant_id, subject = payload.get("t"), payload.get("s")
        incarnation = payload.get("i", "")
        via, email = payload.get("v", "saml"), payload.get("m", "")
        end = payload.get("x", payload["e"])
        issued_at = payload.get("a", 0.0)
        try:
            role = Role(payload.get("r", Role.ADMIN.value)).value
        except ValueError as exc:  # pragma: no cover - signed
            raise _malformed() from exc
        if (
            not isinstance(tenant_id, str)
            or not isinstance(subject, str)
            or not isinstance(incarnation, str)
            or not isinstance(via, str)
            or not isinstance(email, str)
            or isinstance(end, bool)
            or not isinstance(end, (int, float))
            or isinstance(issued_at, bool)
            or not isinstance(issued_at, (int, float))
        ):
            raise _malformed()  # pragma: no cover - signed
        if self.clock() >= end:  # pragma: no cover - e <= x when signed
            msg = "the session has expired; sign in again"
            raise SessionError(msg, reason="expired")
        return Session(
            tenant_id,
            subject,
            float(payload["e"]),
            incarnation,
            role,
            via,
            email,
            absolute_expires_at=float(end),
            issued_at=float(issued_at),
        )

    def csrf_token(self, session: Session) -> str:
        """
        The token every form of *session* carries: an HMAC of the session's
        identity and absolute expiry, so it is the same for the whole
        session (refreshes included) and worthless for any other.
        """
        return self._csrf.get_signature(_csrf_subject(session)).decode("ascii")

    def check_csrf(self, session: Session, token: object) -> bool:
        """
        Whether *token* is *session*'s `csrf_token` (compared in constant
        time, under any of the signer's secrets).
        """
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
            return False
        if not token.isascii():
            return False
        return bool(self._csrf.verify_signature(_csrf_subject(session), token))


def _csrf_subject(session: Session) -> bytes:
    return json.dumps(
        [
            session.tenant_id,
            session.subject,
            session.incarnation,
            session.role,
            session.via,
            repr(session.absolute_expires_at),
        ],
        separators=(",", ":"),
    ).encode("utf-8")


def state_codec(signer: SessionSigner, purpose: str) -> TokenCodec:
    """
    A codec for other short-lived state (a pending SAML login) that shares
    *signer*'s secrets under another purpose, so neither kind of token is
    accepted as the other.

    Raises:
        InvalidConfigError: *purpose* is the sessions' own.
    """
    if purpose == _SESSION_PURPOSE:
        msg = "choose another purpose than the sessions'"
        raise InvalidConfigError(msg, field="purpose")
    return TokenCodec(
        signer._secrets,  # noqa: SLF001 - the codec shares the signer's keys
        purpose,
        signer.clock,
    )
