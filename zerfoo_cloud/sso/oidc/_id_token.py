"""
The checks of an ID token (OpenID Connect Core 1.0, 3.1.3.7): its
signature and algorithm, then its claims.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from collections.abc import Callable
from typing import Any

import attrs
from joserfc import jws
from joserfc.errors import JoseError

from zerfoo_cloud.errors import OIDCError
from zerfoo_cloud.sso.oidc._jwks import SigningKey

__all__ = ["IDTokenChecks", "check_id_token"]

#: The hash of ``at_hash`` for each algorithm's digest size.
_HASHES = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}
#: An ID token longer than this is refused unread.
MAX_ID_TOKEN_LENGTH = 64 * 1024


@attrs.frozen
class IDTokenChecks:
    """
    What an ID token must hold.
    """

    issuer: str
    client_id: str
    algorithms: tuple[str, ...]
    clock_skew: float


def _fail(code: str, message: str) -> OIDCError:
    return OIDCError(message, code=code)


def _number(claims: dict[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
    ):
        raise _fail("oidc_claims", f"the ID token's {name!r} is not a number")
    return float(value)


def _check_signature(
    token: str,
    checks: IDTokenChecks,
    key_for: Callable[[str | None, str], SigningKey],
) -> dict[str, Any]:
    if not isinstance(token, str) or not 0 < len(token) <= MAX_ID_TOKEN_LENGTH:
        raise _fail("oidc_claims", "the ID token is missing or too long")
    try:
        signed = jws.extract_compact(token.encode("ascii"))
        header = signed.headers()
    except (JoseError, ValueError, UnicodeError):
        raise _fail("oidc_claims", "the ID token is not a signed JWT") from None
    alg = header.get("alg")
    if alg not in checks.algorithms:
        allowed = ", ".join(checks.algorithms)
        msg = f"the ID token is signed with {str(alg)[:20]!r}, not one of {allowed}"
        raise _fail("oidc_algorithm", msg)
    kid = header.get("kid")
    key = key_for(kid if isinstance(kid, str) else None, alg)
    try:
        valid = jws.validate_compact(signed, key, algorithms=[alg])
    except (JoseError, ValueError, TypeError):
        valid = False
    if not valid:
        raise _fail("oidc_signature", "the ID token's signature does not verify")
    try:
        claims = json.loads(signed.payload)
    except (ValueError, UnicodeError):
        raise _fail("oidc_claims", "the ID token's claims are not JSON") from None
    if not isinstance(claims, dict):
        raise _fail("oidc_claims", "the ID token's claims are not an object")
    claims["_alg"] = alg
    return claims


def _check_audience(claims: dict[str, Any], client_id: str) -> None:
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or client_id not in audiences:
        raise _fail("oidc_audience", "the ID token is not meant for this client")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != client_id:
        msg = "the ID token has several audiences and is not authorized for this client"
        raise _fail("oidc_audience", msg)


def _check_times(claims: dict[str, Any], now: float, skew: float) -> None:
    exp = _number(claims, "exp", required=True)
    iat = _number(claims, "iat", required=True)
    nbf = _number(claims, "nbf", required=False)
    assert exp is not None
    assert iat is not None
    if now >= exp + skew:
        raise _fail("oidc_expired", "the ID token has expired")
    if iat > now + skew or (nbf is not None and nbf > now + skew):
        raise _fail("oidc_not_yet_valid", "the ID token is not valid yet")


def _check_at_hash(claims: dict[str, Any], access_token: str | None) -> None:
    at_hash = claims.get("at_hash")
    if at_hash is None:
        return
    if not isinstance(access_token, str) or not isinstance(at_hash, str):
        raise _fail("oidc_at_hash", "the ID token's at_hash has no access token")
    digest = _HASHES[str(claims["_alg"])[2:]](access_token.encode("ascii", "replace"))
    half = digest.digest()[: digest.digest_size // 2]
    expected = base64.urlsafe_b64encode(half).rstrip(b"=")
    if not hmac.compare_digest(expected, at_hash.encode("ascii", "replace")):
        raise _fail("oidc_at_hash", "the ID token's at_hash does not match")


def check_id_token(
    token: str,
    checks: IDTokenChecks,
    *,
    nonce: str,
    now: float,
    key_for: Callable[[str | None, str], SigningKey],
    access_token: str | None = None,
) -> dict[str, Any]:
    """
    The claims of *token* once it passes every check: an allowed algorithm
    and a signature by the provider's key, ``iss``, ``aud`` (and ``azp``),
    ``exp``, ``iat`` and ``nbf`` within ``clock_skew``, the *nonce* of the
    login, a ``sub``, and ``at_hash`` when present.

    Raises:
        OIDCError: with the ``code`` of the first check that failed.
    """
    claims = _check_signature(token, checks, key_for)
    if claims.get("iss") != checks.issuer:
        raise _fail("oidc_issuer", "the ID token was issued by another issuer")
    _check_audience(claims, checks.client_id)
    _check_times(claims, now, checks.clock_skew)
    found = claims.get("nonce")
    if not isinstance(found, str) or not hmac.compare_digest(
        found.encode(), nonce.encode()
    ):
        raise _fail("oidc_nonce", "the ID token's nonce is not this login's")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise _fail("oidc_claims", "the ID token has no subject")
    _check_at_hash(claims, access_token)
    return claims
