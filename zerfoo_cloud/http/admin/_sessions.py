"""
Signed, short-lived session tokens for tenant admins, signed by itsdangerous.

A token is ``v1.<payload>.<signature>``: the payload is compact JSON in
URL-safe base64 (no padding); the signature is itsdangerous's `Signer`
(HMAC-SHA256, key derived by HMAC from the secret and the token's purpose as
salt) over ``v1.<payload>``, so a token made for one purpose (a session) is
never accepted for another (the state of a pending SAML login). Tokens carry
their expiry; nothing is stored on the server, so every worker process that
shares the secret accepts them.
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
from zerfoo_cloud.tenants import TENANT_ID_PATTERN

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock

__all__ = [
    "MAX_INCARNATION_LENGTH",
    "MAX_SESSION_TTL",
    "MAX_SUBJECT_LENGTH",
    "MAX_TOKEN_LENGTH",
    "MIN_SECRET_BYTES",
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

_VERSION = "v1"
_TOKEN = re.compile(r"v1\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")
_SESSION_PURPOSE = "session"
#: The console roles a session may carry (`zerfoo_cloud.sso.Role` values).
_ROLES = ("admin", "viewer", "operator")


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
    A verified tenant-admin session.

    Attributes:
        tenant_id: the only tenant this session may see.
        subject: who signed in (the SAML NameID).
        expires_at: when the session ends, Unix seconds.
        incarnation: the ``TenantRecord.incarnation`` of the tenant when the
            session was issued; the session is worth nothing once the tenant
            is deleted, even if one with the same id is created again
            (empty for tokens issued without one, which no admin API
            accepts).
        role: the console role (``admin``, ``viewer`` or ``operator``, the
            values of `zerfoo_cloud.sso.Role`); an operator's session has
            no tenant (*tenant_id* ``""``).
        via: how the user signed in (``saml`` or ``oidc``), or ``""``.

    .. versionadded:: 0.1.0
    """

    tenant_id: str
    subject: str
    expires_at: float
    incarnation: str = ""
    role: str = "admin"
    via: str = ""


class SessionSigner:
    """
    Issues and verifies signed, short-lived tenant-admin sessions.

    Tokens are HMAC-SHA256 signed and carry their tenant, subject and
    expiry; the server keeps no session state, so every process given the
    same *secret* accepts the same tokens. Verification compares in
    constant time and refuses expired, altered and foreign tokens.

    Args:
        secret: at least `MIN_SECRET_BYTES` random bytes
            (``secrets.token_bytes(32)``). Never shown in a repr.
        ttl: seconds a session lasts, more than 0 and at most
            `MAX_SESSION_TTL`.
        clock: the time source, Unix seconds.
        previous_secrets: older secrets still accepted (never used to
            sign), so the secret can be rotated without ending every
            session at once.

    Raises:
        InvalidConfigError: a secret that is not bytes or is too short, or a
            *ttl* out of range.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        secret: bytes,
        *,
        ttl: float = 3600,
        clock: Clock = time.time,
        previous_secrets: Iterable[bytes] = (),
    ) -> None:
        secrets = [_check_secret(secret), *map(_check_secret, previous_secrets)]
        if (
            isinstance(ttl, bool)
            or not isinstance(ttl, (int, float))
            or not 0 < ttl <= MAX_SESSION_TTL
        ):
            msg = f"ttl must be more than 0 and at most {MAX_SESSION_TTL} seconds, not {ttl!r}"
            raise InvalidConfigError(msg, field="ttl")
        self.ttl = float(ttl)
        self.clock = clock
        self._secrets = tuple(secrets)
        self._codec = TokenCodec(secrets, _SESSION_PURPOSE, clock)

    def __repr__(self) -> str:
        return f"<SessionSigner ttl={self.ttl:g}s keys={len(self._secrets)}>"

    def issue(
        self,
        tenant_id: str,
        subject: str,
        *,
        incarnation: str,
        expires_at: float | None = None,
        role: str = "admin",
        via: str = "",
    ) -> str:
        """
        Return a new session token for *subject*, valid for `ttl` seconds,
        that may see only tenant *tenant_id* as it is now.

        Args:
            tenant_id: the only tenant the session may see.
            subject: who signed in.
            incarnation: the tenant's ``TenantRecord.incarnation``; the
                admin API refuses the session once the tenant's differs
                (it was deleted, and perhaps created again).
            expires_at: end the session at this Unix time instead, if that
                is sooner (the IdP's ``SessionNotOnOrAfter``).
            role: the console role: ``admin``, ``viewer``, or ``operator``
                (whose session has no tenant: *tenant_id* and *incarnation*
                ``""``).
            via: how the user signed in (``saml``, ``oidc``).

        Raises:
            InvalidConfigError: a malformed tenant id, an empty subject or
                one over `MAX_SUBJECT_LENGTH` characters, an empty or
                overlong incarnation, or an unknown role.
        """
        if role not in _ROLES:
            msg = f"role must be one of {', '.join(_ROLES)}, not {role!r}"
            raise InvalidConfigError(msg, field="role")
        if role == "operator":
            if tenant_id or incarnation:
                msg = "an operator's session has no tenant"
                raise InvalidConfigError(msg, field="tenant_id")
            return self._sign(
                "", subject, incarnation="", expires_at=expires_at, role=role, via=via
            )
        if not isinstance(tenant_id, str) or not TENANT_ID_PATTERN.fullmatch(tenant_id):
            msg = f"tenant id {tenant_id!r} is invalid"
            raise InvalidConfigError(msg, field="tenant_id")
        if (
            not isinstance(incarnation, str)
            or not 0 < len(incarnation) <= MAX_INCARNATION_LENGTH
        ):
            msg = f"the incarnation must be 1 to {MAX_INCARNATION_LENGTH} characters"
            raise InvalidConfigError(msg, field="incarnation")
        return self._sign(
            tenant_id,
            subject,
            incarnation=incarnation,
            expires_at=expires_at,
            role=role,
            via=via,
        )

    def _sign(
        self,
        tenant_id: str,
        subject: str,
        *,
        incarnation: str,
        expires_at: float | None,
        role: str,
        via: str,
    ) -> str:
        if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT_LENGTH:
            msg = f"the subject must be 1 to {MAX_SUBJECT_LENGTH} characters"
            raise InvalidConfigError(msg, field="subject")
        end = self.clock() + self.ttl
        if expires_at is not None:
            end = min(end, expires_at)
        payload: dict[str, Any] = {
            "t": tenant_id,
            "s": subject,
            "i": incarnation,
            "e": end,
        }
        # Tokens of admins signed in before roles existed stay as they were.
        if role != "admin":
            payload["r"] = role
        if via:
            payload["v"] = str(via)[:16]
        return self._codec.dumps(payload)

    def verify(self, token: str) -> Session:
        """
        Return the session *token* stands for.

        Raises:
            SessionError: the token is malformed (``reason="malformed"``),
                not signed by this signer's secrets (``"signature"``), or
                expired (``"expired"``: at or after its ``expires_at``).
        """
        payload = self._codec.loads(token)
        tenant_id, subject = payload.get("t"), payload.get("s")
        incarnation = payload.get("i", "")
        role, via = payload.get("r", "admin"), payload.get("v", "")
        if (
            not isinstance(tenant_id, str)
            or not isinstance(subject, str)
            or not isinstance(incarnation, str)
            or role not in _ROLES
            or not isinstance(via, str)
        ):
            msg = "the session token is malformed"  # pragma: no cover - signed
            raise SessionError(msg, reason="malformed")  # pragma: no cover
        return Session(
            tenant_id, subject, float(payload["e"]), incarnation, role=role, via=via
        )


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
