"""
The settings of one OpenID provider for one tenant (or for the operators),
and the ``serve --oidc FILE`` file that lists them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import tomllib

from zerfoo_cloud.errors import InvalidConfigError, OIDCError
from zerfoo_cloud.sso.oidc._fetch import check_url
from zerfoo_cloud.sso.roles import DEFAULT_GROUP_CLAIMS, Role, RoleMap
from zerfoo_cloud.tenants import TENANT_ID_PATTERN

__all__ = [
    "DEFAULT_ALGORITHMS",
    "MAX_OIDC_FILE_BYTES",
    "OPERATORS",
    "SUPPORTED_ALGORITHMS",
    "TOKEN_AUTH_METHODS",
    "ClientSecret",
    "OIDCConfig",
    "read_oidc_file",
]

#: The route name (``/sso/oidc/<name>/...``) of the operators' provider;
#: no tenant id can be spelled so.
OPERATORS = "_operators"
#: The ID token signature algorithms accepted unless a provider lists others.
DEFAULT_ALGORITHMS = ("RS256", "ES256", "PS256")
#: The only algorithms a provider may list: public-key signatures. ``none``
#: and the HMAC family (``HS256``...) are never accepted.
SUPPORTED_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
)
#: How the client authenticates at the token endpoint (``none``: a public
#: client, with PKCE only).
TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
#: The largest ``--oidc`` file read.
MAX_OIDC_FILE_BYTES = 1 << 20
#: The keys a provider entry of the ``--oidc`` file may have.
_FILE_KEYS = frozenset(
    {
        "tenant",
        "operators",
        "issuer",
        "client_id",
        "client_secret_file",
        "client_secret_env",
        "token_auth",
        "scopes",
        "groups_claims",
        "roles",
        "algorithms",
        "redirect_uri",
        "clock_skew",
        "timeout",
        "max_response_bytes",
        "jwks_refresh_interval",
    }
)


class ClientSecret:
    """
    An OAuth client secret, kept out of every repr, message and log line.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            msg = "the client secret is empty"
            raise InvalidConfigError(msg, field="client_secret")
        self._value = value.strip()

    def reveal(self) -> str:
        """
        The secret itself, to send to the token endpoint and nowhere else.
        """
        return self._value

    def __repr__(self) -> str:
        return "ClientSecret('[redacted]')"

    __str__ = __repr__


def _field(name: str, message: str) -> InvalidConfigError:
    return InvalidConfigError(f"{name}: {message}", field=name)


def _checked_url(name: str, value: object) -> None:
    try:
        check_url(value, name)
    except OIDCError as exc:
        raise _field(name, str(exc)) from None


def _positive(name: str, value: object, top: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 < value <= top
    ):
        raise _field(name, f"must be more than 0 and at most {top:g}, not {value!r}")
    return float(value)


def _names(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise _field(name, "must be a list of strings")
    if not value or not all(isinstance(v, str) and v for v in value):
        raise _field(name, "must be a non-empty list of non-empty strings")
    return tuple(value)


@attrs.frozen
class OIDCConfig:
    """
    One OpenID provider, as a relying party of one tenant or of the
    operators.

    Attributes:
        issuer: the provider's issuer URL, exactly as its discovery document
            and ID tokens give it (``https://``; ``http://`` only on a
            loopback address).
        client_id: this service's client id at the provider.
        redirect_uri: this service's callback,
            ``<public URL>/sso/oidc/<name>/callback``, as registered there.
        role_map: which group gives which role; a user none of whose groups
            is in it is refused.
        tenant_id: the tenant its users sign in to; ``None`` for the
            operators' provider (*operators* true).
        operators: the provider signs in operators of the whole service;
            its role map may give only ``operator``, and a tenant's may
            never give it.
        client_secret: the client secret, for ``client_secret_basic`` and
            ``client_secret_post``; ``None`` for a public client.
        token_auth: one of `TOKEN_AUTH_METHODS`.
        scopes: the scopes asked for; ``openid`` is always among them.
        groups_claims: the ID token claims holding the user's groups.
        algorithms: the ID token signature algorithms accepted, a subset of
            `SUPPORTED_ALGORITHMS`.
        clock_skew: seconds tolerated on ``exp``, ``nbf`` and ``iat``.
        timeout: seconds each call to the provider may take in all.
        max_response_bytes: the largest answer read from the provider.
        jwks_refresh_interval: an ID token signed with a key id the cached
            key set lacks refetches the set at most once per this many
            seconds.

    Raises:
        InvalidConfigError: a setting that is missing or out of range,
            naming it.

    .. versionadded:: 0.1.0
    """

    issuer: str = attrs.field()
    client_id: str = attrs.field()
    redirect_uri: str = attrs.field()
    role_map: RoleMap = attrs.field()
    tenant_id: str | None = attrs.field(default=None, kw_only=True)
    operators: bool = attrs.field(default=False, kw_only=True)
    client_secret: ClientSecret | None = attrs.field(default=None, kw_only=True)
    token_auth: str = attrs.field(default="client_secret_basic", kw_only=True)
    scopes: tuple[str, ...] = attrs.field(
        default=("openid", "email", "profile"), kw_only=True, converter=tuple
    )
    groups_claims: tuple[str, ...] = attrs.field(
        default=DEFAULT_GROUP_CLAIMS, kw_only=True, converter=tuple
    )
    algorithms: tuple[str, ...] = attrs.field(
        default=DEFAULT_ALGORITHMS, kw_only=True, converter=tuple
    )
    clock_skew: float = attrs.field(default=60.0, kw_only=True)
    timeout: float = attrs.field(default=10.0, kw_only=True)
    max_response_bytes: int = attrs.field(default=1 << 20, kw_only=True)
    jwks_refresh_interval: float = attrs.field(default=60.0, kw_only=True)

    def __attrs_post_init__(self) -> None:
        _checked_url("issuer", self.issuer)
        _checked_url("redirect_uri", self.redirect_uri)
        if not isinstance(self.client_id, str) or not self.client_id:
            raise _field("client_id", "is required")
        if self.operators == (self.tenant_id is not None):
            msg = "give either a tenant or operators = true, not both or neither"
            raise _field("tenant", msg)
        if self.tenant_id is not None and not TENANT_ID_PATTERN.fullmatch(
            self.tenant_id
        ):
            raise _field("tenant", f"{self.tenant_id!r} is not a tenant id")
        self._check_roles()
        if self.token_auth not in TOKEN_AUTH_METHODS:
            methods = ", ".join(TOKEN_AUTH_METHODS)
            raise _field("token_auth", f"must be one of {methods}")
        if (self.token_auth == "none") != (  # noqa: S105 - a method's name
            self.client_secret is None
        ):
            msg = (
                "a client secret (client_secret_file or client_secret_env) "
                "goes with client_secret_basic or client_secret_post, and "
                "none with token_auth = 'none'"
            )
            raise _field("token_auth", msg)
        if "openid" not in self.scopes:
            raise _field("scopes", "must include 'openid'")
        if not self.algorithms or not set(self.algorithms) <= set(SUPPORTED_ALGORITHMS):
            supported = ", ".join(SUPPORTED_ALGORITHMS)
            raise _field("algorithms", f"must be some of {supported}")
        _positive("clock_skew", self.clock_skew, 600)
        _positive("timeout", self.timeout, 120)
        _positive("max_response_bytes", self.max_response_bytes, 16 << 20)
        _positive("jwks_refresh_interval", self.jwks_refresh_interval, 86_400)

    def _check_roles(self) -> None:
        if not isinstance(self.role_map, RoleMap) or not self.role_map.roles:
            raise _field("roles", "map at least one group to a role")
        granted = set(self.role_map.roles.values())
        if self.operators and granted != {Role.OPERATOR}:
            raise _field("roles", "the operators' provider may only give 'operator'")
        if not self.operators and Role.OPERATOR in granted:
            msg = "a tenant's provider may not give 'operator'; use operators = true"
            raise _field("roles", msg)

    @property
    def name(self) -> str:
        """
        The provider's name in its routes: the tenant id, or `OPERATORS`.
        """
        return OPERATORS if self.tenant_id is None else self.tenant_id

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, public_url: str, env: Mapping[str, str]
    ) -> OIDCConfig:
        """
        The provider of one entry of the ``--oidc`` file; its redirect URI
        defaults to ``<public_url>/sso/oidc/<name>/callback``, its client
        secret is read from ``client_secret_file`` or from the variable
        ``client_secret_env`` of *env*.

        Raises:
            InvalidConfigError: an unknown key or a bad value, naming it.
        """
        if not isinstance(data, Mapping):
            raise _field("providers", "each provider is a table of settings")
        unknown = sorted(set(data) - _FILE_KEYS)
        if unknown:
            raise _field(unknown[0], "is not a provider setting")
        options: dict[str, Any] = {}
        for key in ("clock_skew", "timeout", "max_response_bytes"):
            if key in data:
                options[key] = data[key]
        if "jwks_refresh_interval" in data:
            options["jwks_refresh_interval"] = data["jwks_refresh_interval"]
        for key in ("scopes", "groups_claims", "algorithms"):
            if key in data:
                options[key] = _names(key, data[key])
        operators = data.get("operators", False)
        if not isinstance(operators, bool):
            raise _field("operators", "must be true or false")
        tenant = data.get("tenant")
        if tenant is not None and not isinstance(tenant, str):
            raise _field("tenant", "must be a string")
        name = OPERATORS if operators else str(tenant)
        redirect = data.get(
            "redirect_uri", f"{public_url.rstrip('/')}/sso/oidc/{name}/callback"
        )
        return cls(
            data.get("issuer", ""),
            data.get("client_id", ""),
            redirect,
            RoleMap(data.get("roles", {})),
            tenant_id=tenant,
            operators=operators,
            client_secret=_secret_of(data, env),
            token_auth=data.get("token_auth", "client_secret_basic"),
            **options,
        )


def _secret_of(data: Mapping[str, Any], env: Mapping[str, str]) -> ClientSecret | None:
    path, variable = data.get("client_secret_file"), data.get("client_secret_env")
    if path is not None and variable is not None:
        msg = "give client_secret_file or client_secret_env, not both"
        raise _field("client_secret_file", msg)
    if path is not None:
        if not isinstance(path, str):
            raise _field("client_secret_file", "must be a path")
        try:
            return ClientSecret(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            msg = f"cannot read {path!r}: {exc.strerror or exc}"
            raise _field("client_secret_file", msg) from None
        except UnicodeDecodeError:
            raise _field("client_secret_file", f"{path!r} is not text") from None
    if variable is not None:
        if not isinstance(variable, str) or not env.get(variable, "").strip():
            raise _field("client_secret_env", f"{variable!r} is not set")
        return ClientSecret(env[variable])
    return None


def read_oidc_file(
    path: str | os.PathLike[str], *, public_url: str, env: Mapping[str, str]
) -> tuple[OIDCConfig, ...]:
    """
    The providers of an ``--oidc`` file: JSON (``{"providers": [...]}`` or
    a list) or TOML (``[[providers]]`` tables), by its suffix; at most one
    per tenant and one for the operators.

    Raises:
        InvalidConfigError: the file cannot be read or parsed, or holds a
            bad provider; one line starting with *path*.

    .. versionadded:: 0.1.0
    """
    where = os.fspath(path)
    try:
        return _read_providers(Path(path), public_url, env)
    except InvalidConfigError as exc:
        msg = f"{where}: {exc}"
        raise InvalidConfigError(msg, field=exc.field) from None


def _read_providers(
    path: Path, public_url: str, env: Mapping[str, str]
) -> tuple[OIDCConfig, ...]:
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise _field("path", "an --oidc file's name ends in .json or .toml")
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_OIDC_FILE_BYTES + 1)
    except OSError as exc:
        raise _field("path", f"cannot read it: {exc.strerror or exc}") from None
    if len(raw) > MAX_OIDC_FILE_BYTES:
        raise _field("path", f"larger than {MAX_OIDC_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8-sig")
        data = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    except (ValueError, RecursionError) as exc:
        kind = suffix.lstrip(".").upper()
        raise _field("path", f"not {kind}: {str(exc).splitlines()[0][:200]}") from None
    entries = data.get("providers") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise _field("providers", "list at least one provider")
    configs = tuple(
        OIDCConfig.from_dict(entry, public_url=public_url, env=env) for entry in entries
    )
    names = [config.name for config in configs]
    for name in names:
        if names.count(name) > 1:
            raise _field("tenant", f"{name!r} has more than one provider")
    return configs
