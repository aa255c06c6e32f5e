"""
An OpenID provider as seen by this relying party: the authorization code
flow with PKCE (S256), the code exchange and the ID token checks.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from zerfoo_cloud.errors import OIDCError
from zerfoo_cloud.sso.identity import SSOIdentity
from zerfoo_cloud.sso.oidc._fetch import fetch_json
from zerfoo_cloud.sso.oidc._id_token import IDTokenChecks, check_id_token
from zerfoo_cloud.sso.oidc._jwks import JWKSCache
from zerfoo_cloud.sso.oidc.discovery import ProviderMetadata, discovery_url
from zerfoo_cloud.sso.roles import Role, pick_groups

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.sso.oidc.config import OIDCConfig

__all__ = ["OIDCProvider", "code_challenge", "new_code_verifier"]

#: Discovery documents are refetched when older than this many seconds.
_DISCOVERY_MAX_AGE = 3600.0
#: Claims copied into `SSOIdentity.attributes` when they are strings or
#: lists of strings.
_MAX_ATTRIBUTES = 64
#: A provider's ``error`` code is shown up to this many characters.
_MAX_ERROR_CODE = 64


def new_code_verifier() -> str:
    """
    A fresh PKCE code verifier: 43 characters of URL-safe randomness.
    """
    return secrets.token_urlsafe(32)


def code_challenge(verifier: str) -> str:
    """
    The S256 PKCE challenge of *verifier* (RFC 7636, 4.2).
    """
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _form_encoded(value: str) -> str:
    # RFC 6749, 2.3.1: the client id and secret are form-encoded first.
    return urllib.parse.quote_plus(value)


class OIDCProvider:
    """
    One tenant's (or the operators') OpenID provider.

    Every method that may call the provider blocks (discovery, the JWK set,
    the token endpoint, each bounded by ``config.timeout`` and
    ``config.max_response_bytes``): call them in a worker thread. The
    discovery document and the keys are cached; the cache is safe to share
    between threads.

    Args:
        config: the provider's settings.
        clock: returns the current Unix time.

    .. versionadded:: 0.1.0
    """

    def __init__(self, config: OIDCConfig, *, clock: Clock = time.time) -> None:
        self.config = config
        self._clock = clock
        self._metadata: ProviderMetadata | None = None
        self._metadata_at = float("-inf")
        self._lock = threading.Lock()
        self._keys = JWKSCache(
            self._fetch_keys, clock=clock, refresh_interval=config.jwks_refresh_interval
        )

    def __repr__(self) -> str:
        return (
            f"OIDCProvider(issuer={self.config.issuer!r}, "
            f"name={self.config.name!r}, client_id={self.config.client_id!r})"
        )

    @property
    def name(self) -> str:
        """
        The provider's name in its routes: the tenant id, or ``_operators``.
        """
        return self.config.name

    def _get(self, url: str, what: str) -> Any:
        status, body = fetch_json(
            url,
            what,
            timeout=self.config.timeout,
            max_bytes=self.config.max_response_bytes,
        )
        if status != 200:  # noqa: PLR2004
            msg = f"the {what} answered HTTP {status}"
            raise OIDCError(msg, code="oidc_discovery")
        return body

    def metadata(self) -> ProviderMetadata:
        """
        The provider's endpoints, from its discovery document (fetched on
        first use and hourly).

        Raises:
            OIDCError: the document cannot be fetched, or names another
                issuer or a bad endpoint.
        """
        with self._lock:
            if (
                self._metadata is None
                or self._clock() - self._metadata_at >= _DISCOVERY_MAX_AGE
            ):
                issuer = self.config.issuer
                document = self._get(discovery_url(issuer), "discovery document")
                self._metadata = ProviderMetadata.from_document(document, issuer=issuer)
                self._metadata_at = self._clock()
            return self._metadata

    def _fetch_keys(self) -> Any:
        return self._get(self.metadata().jwks_uri, "JWK set")

    def authorization_url(self, *, state: str, nonce: str, code_verifier: str) -> str:
        """
        Where to send the browser: the authorization endpoint with this
        login's *state*, *nonce* and the S256 challenge of *code_verifier*.

        Raises:
            OIDCError: the discovery document cannot be had.
        """
        config = self.config
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": config.client_id,
                "redirect_uri": config.redirect_uri,
                "scope": " ".join(config.scopes),
                "state": state,
                "nonce": nonce,
                "code_challenge": code_challenge(code_verifier),
                "code_challenge_method": "S256",
            },
            quote_via=urllib.parse.quote,
        )
        endpoint = self.metadata().authorization_endpoint
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    def exchange_code(self, code: str, *, code_verifier: str) -> dict[str, Any]:
        """
        Trade an authorization *code* for the provider's tokens (the token
        endpoint's JSON answer), proving the login with *code_verifier*.

        Raises:
            OIDCError: ``oidc_token_endpoint`` when the provider refuses
                (its ``error`` code in the message), or a network error.
        """
        config = self.config
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": config.redirect_uri,
            "code_verifier": code_verifier,
        }
        auth = None
        secret = config.client_secret
        basic = config.token_auth == "client_secret_basic"  # noqa: S105 - a name
        if basic and secret is not None:
            auth = (_form_encoded(config.client_id), _form_encoded(secret.reveal()))
        else:
            form["client_id"] = config.client_id
            if secret is not None:
                form["client_secret"] = secret.reveal()
        status, body = fetch_json(
            self.metadata().token_endpoint,
            "token endpoint",
            timeout=config.timeout,
            max_bytes=config.max_response_bytes,
            form=form,
            auth=auth,
        )
        if status != 200 or not isinstance(body, dict):  # noqa: PLR2004
            error = body.get("error") if isinstance(body, dict) else None
            shown = (
                f" ({error[:_MAX_ERROR_CODE]!r})"
                if isinstance(error, str) and error.isascii()
                else ""
            )
            msg = f"the token endpoint refused the code: HTTP {status}{shown}"
            raise OIDCError(msg, code="oidc_token_endpoint")
        if not isinstance(body.get("id_token"), str):
            msg = "the token endpoint's answer has no ID token"
            raise OIDCError(msg, code="oidc_token_endpoint")
        return body

    def validate(self, tokens: dict[str, Any], *, nonce: str) -> SSOIdentity:
        """
        The user of a token endpoint answer, once its ID token passes every
        check (`zerfoo_cloud.sso.oidc` lists them) for this login's *nonce*.

        Raises:
            OIDCError: the code of the check that failed.
        """
        config = self.config
        checks = IDTokenChecks(
            config.issuer, config.client_id, config.algorithms, config.clock_skew
        )
        access_token = tokens.get("access_token")
        claims = check_id_token(
            tokens["id_token"],
            checks,
            nonce=nonce,
            now=self._clock(),
            key_for=self._keys.key_for,
            access_token=access_token if isinstance(access_token, str) else None,
        )
        return _identity(claims, config)

    def login(self, code: str, *, code_verifier: str, nonce: str) -> SSOIdentity:
        """
        `exchange_code`, then `validate`: the user who signed in.

        Raises:
            OIDCError: the provider refused, or a check failed.
        """
        return self.validate(
            self.exchange_code(code, code_verifier=code_verifier), nonce=nonce
        )

    def role_for(self, identity: SSOIdentity) -> Role | None:
        """
        The role *identity*'s groups give under this provider's role map.
        """
        return self.config.role_map.role_for(identity.groups)


def _identity(claims: dict[str, Any], config: OIDCConfig) -> SSOIdentity:
    email = claims.get("email")
    email = email if isinstance(email, str) else ""
    groups = list(pick_groups(claims, config.groups_claims))
    hd = claims.get("hd")
    if isinstance(hd, str) and hd:
        groups.append(f"hd:{hd.lower()}")
    if claims.get("email_verified") is True and "@" in email:
        groups.append(f"email_domain:{email.rsplit('@', 1)[1].lower()}")
    attributes: dict[str, list[str]] = {}
    for name, value in list(claims.items())[:_MAX_ATTRIBUTES]:
        if name.startswith("_"):
            continue
        if isinstance(value, str):
            attributes[name] = [value]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            attributes[name] = list(value)
    jti = claims.get("jti")
    return SSOIdentity(
        subject=claims["sub"],
        tenant_id=config.tenant_id or "",
        email=email,
        attributes=attributes,
        expires_at=float(claims["exp"]),
        issuer=config.issuer,
        assertion_id=jti if isinstance(jti, str) else "",
        groups=groups,
    )
