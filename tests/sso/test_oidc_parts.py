"""
The parts of OpenID Connect login on their own: role maps, provider
settings and the --oidc file, bounded fetches and the key set cache.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests._oidc_provider import OIDCTestProvider
from tests.conftest import FakeClock
from zerfoo_cloud import InvalidConfigError, OIDCError
from zerfoo_cloud.sso import Role, RoleMap
from zerfoo_cloud.sso.oidc import (
    ClientSecret,
    OIDCConfig,
    OIDCProvider,
    code_challenge,
    read_oidc_file,
)
from zerfoo_cloud.sso.oidc._fetch import fetch_json
from zerfoo_cloud.sso.roles import MAX_GROUPS, pick_groups

ISSUER = "https://idp.example.com"
CALLBACK = "https://api.example.com/sso/oidc/acme/callback"


@pytest.fixture(scope="module")
def idp() -> Iterator[OIDCTestProvider]:
    """
    A real provider for the fetch and key set tests.
    """
    with OIDCTestProvider() as provider:
        yield provider


# -- roles ----------------------------------------------------------------------


def test_role_map_picks_the_strongest_role() -> None:
    """Operator beats admin beats viewer; no match is no access."""
    roles = RoleMap({"ops": "operator", "admins": "admin", "viewers": Role.VIEWER})
    assert roles.role_for(["viewers", "admins"]) is Role.ADMIN
    assert roles.role_for(["viewers", "ops"]) is Role.OPERATOR
    assert roles.role_for(["viewers"]) is Role.VIEWER
    assert roles.role_for(["Admins", "other"]) is None  # case matters
    assert roles.role_for([]) is None
    assert RoleMap({"a": "admin"}) == RoleMap({"a": Role.ADMIN})
    assert repr(RoleMap({"a": "admin"})) == "RoleMap({'a': 'admin'})"


@given(
    st.dictionaries(st.text(min_size=1, max_size=5), st.sampled_from(list(Role))),
    st.lists(st.text(max_size=5)),
)
def test_role_map_gives_the_strongest_of_the_matched_roles(
    mapping: dict[str, Role], groups: list[str]
) -> None:
    """role_for is the strongest role of the groups found in the map, or None."""
    matched = {mapping[g] for g in groups if g in mapping}
    order = [Role.OPERATOR, Role.ADMIN, Role.VIEWER]
    expected = next((r for r in order if r in matched), None)
    assert RoleMap(mapping).role_for(groups) is expected


@pytest.mark.parametrize(
    "bad", [{"a": "root"}, {"": "admin"}, {"a": 1}, ["admin"], {1: "admin"}]
)
def test_role_map_refuses_bad_entries(bad: Any) -> None:
    """Unknown roles, empty group names and non-mappings are configuration errors."""
    with pytest.raises(InvalidConfigError) as info:
        RoleMap(bad)
    assert info.value.field == "roles"


def test_groups_are_picked_from_claims_and_attributes() -> None:
    """Strings and lists of strings under the named keys, in order, once each, case-insensitive keys."""
    claims = {
        "groups": ["a", "b", "a", 3, ""],
        "Roles": "c",
        "other": ["x"],
        "memberof": {"not": "a list"},
    }
    assert pick_groups(claims, ("groups", "roles", "memberOf")) == ("a", "b", "c")
    many = {"groups": [f"g{i}" for i in range(MAX_GROUPS + 1)]}
    assert len(pick_groups(many, ("groups",))) == MAX_GROUPS
    assert len(pick_groups({"groups": ["x" * 1025]}, ("groups",))) == 0
    assert len(pick_groups({"groups": ["x" * 1024]}, ("groups",))) == 1


# -- settings and the --oidc file ----------------------------------------------


def settings(**changes: Any) -> dict[str, Any]:
    """
    A valid provider entry of the --oidc file, with *changes*.
    """
    entry: dict[str, Any] = {
        "tenant": "acme",
        "issuer": ISSUER,
        "client_id": "zc",
        "client_secret_env": "ACME_OIDC_SECRET",
        "roles": {"zc-admins": "admin"},
    }
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not None}


ENV = {"ACME_OIDC_SECRET": "top-secret-value"}


def config(**changes: Any) -> OIDCConfig:
    """
    The provider of `settings` with *changes*.
    """
    return OIDCConfig.from_dict(
        settings(**changes), public_url="https://api.example.com/", env=ENV
    )


def test_settings_from_a_file_entry() -> None:
    """Defaults: the callback under the public URL, S256 algorithms, basic auth, openid scopes."""
    made = config()
    assert made.redirect_uri == CALLBACK
    assert made.name == "acme"
    assert made.algorithms == ("RS256", "ES256", "PS256")
    assert made.token_auth == "client_secret_basic"
    assert made.groups_claims == ("groups", "roles")
    assert made.client_secret is not None
    assert made.client_secret.reveal() == "top-secret-value"
    assert "top-secret-value" not in repr(made)
    assert "top-secret-value" not in str(made.client_secret)
    operators = config(tenant=None, operators=True, roles={"ops": "operator"})
    assert operators.name == "_operators"
    assert (
        operators.redirect_uri == "https://api.example.com/sso/oidc/_operators/callback"
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"issuer": "http://idp.example.com"}, "issuer"),
        ({"issuer": "ftp://idp.example.com"}, "issuer"),
        ({"algorithms": ["HS256"]}, "algorithms"),
        ({"algorithms": ["none"]}, "algorithms"),
        ({"algorithms": []}, "algorithms"),
        ({"roles": {"zc": "operator"}}, "roles"),
        ({"roles": {}}, "roles"),
        ({"tenant": None, "operators": True}, "roles"),
        ({"tenant": None}, "tenant"),
        ({"operators": True}, "tenant"),
        ({"tenant": "-bad"}, "tenant"),
        ({"client_id": ""}, "client_id"),
        ({"scopes": ["email"]}, "scopes"),
        ({"token_auth": "private_key_jwt"}, "token_auth"),
        ({"token_auth": "none"}, "token_auth"),
        ({"client_secret_env": None}, "token_auth"),
        ({"client_secret_env": "UNSET_VARIABLE"}, "client_secret_env"),
        ({"client_secret_file": "/no/such/file"}, "client_secret_file"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": 121}, "timeout"),
        ({"clock_skew": True}, "clock_skew"),
        ({"color": "blue"}, "color"),
    ],
)
def test_bad_settings_are_refused(changes: dict[str, Any], field: str) -> None:
    """Each bad setting is one InvalidConfigError naming it."""
    with pytest.raises(InvalidConfigError) as info:
        config(**changes)
    assert info.value.field == field
    assert "top-secret-value" not in str(info.value)


def test_loopback_http_issuers_are_allowed() -> None:
    """Plain http only to a loopback address (a local test provider)."""
    for issuer in ("http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:2"):
        assert config(issuer=issuer).issuer == issuer


def test_the_oidc_file_in_json_and_toml(tmp_path: Path) -> None:
    """Both formats, the secret from a file, one provider per tenant."""
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    entry = settings(client_secret_env=None, client_secret_file=str(secret))
    as_json = tmp_path / "oidc.json"
    as_json.write_text(json.dumps({"providers": [entry]}))
    (made,) = read_oidc_file(as_json, public_url="https://api.example.com", env={})
    assert made.client_secret is not None
    assert made.client_secret.reveal() == "from-a-file"
    as_toml = tmp_path / "oidc.toml"
    as_toml.write_text(
        "[[providers]]\n"
        'tenant = "acme"\n'
        f'issuer = "{ISSUER}"\n'
        'client_id = "zc"\n'
        'token_auth = "none"\n'
        "[providers.roles]\n"
        '"zc-admins" = "admin"\n'
    )
    (public,) = read_oidc_file(as_toml, public_url="https://api.example.com", env={})
    assert public.client_secret is None
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps([entry, entry]))
    with pytest.raises(InvalidConfigError, match="more than one provider"):
        read_oidc_file(twice, public_url="https://api.example.com", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[[providers]\n")
    with pytest.raises(InvalidConfigError, match=r"bad\.toml: path: not TOML"):
        read_oidc_file(bad, public_url="https://api.example.com", env={})
    with pytest.raises(InvalidConfigError, match=r"ends in \.json or \.toml"):
        read_oidc_file(tmp_path / "x.yaml", public_url="https://x", env={})


def test_pkce_challenge_matches_rfc_7636() -> None:
    """The S256 example of RFC 7636, appendix B."""
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_client_secret_is_never_shown() -> None:
    """repr and str of a secret show nothing of it."""
    secret = ClientSecret("hunter2-hunter2")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in f"{secret}"
    with pytest.raises(InvalidConfigError):
        ClientSecret("  ")


# -- fetches and keys ---------------------------------------------------------


def test_fetch_size_limit_at_and_past_the_limit(idp: OIDCTestProvider) -> None:
    """An answer of exactly max_bytes is read; one byte less is the limit passed."""
    url = idp.issuer + "/.well-known/openid-configuration"
    exact = len(httpx.get(url).content)
    status, _ = fetch_json(url, "doc", timeout=5, max_bytes=exact)
    assert status == 200
    with pytest.raises(OIDCError) as info:
        fetch_json(url, "discovery document", timeout=5, max_bytes=exact - 1)
    assert info.value.code == "oidc_too_large"
    assert "discovery document" in str(info.value)


def test_fetch_errors_are_one_line(idp: OIDCTestProvider) -> None:
    """A closed port and a redirect are OIDCErrors, not tracebacks."""
    with pytest.raises(OIDCError) as info:
        fetch_json("http://127.0.0.1:9/x", "token endpoint", timeout=2, max_bytes=10)
    assert info.value.code == "oidc_network"
    with pytest.raises(OIDCError) as info:
        fetch_json(
            idp.issuer + "/authorize?client_id=zerfoo-console&response_type=code"
            "&code_challenge_method=S256&code_challenge=x&redirect_uri=https://a/cb",
            "page",
            timeout=2,
            max_bytes=1000,
        )
    assert info.value.code == "oidc_network"
    assert "redirect" in str(info.value)


def test_the_key_set_is_refetched_at_most_once_per_interval(
    idp: OIDCTestProvider,
) -> None:
    """Unknown key ids refetch once, then not until the interval has passed."""
    idp.reset()
    clock = FakeClock()
    made = OIDCConfig(
        idp.issuer,
        idp.client_id,
        CALLBACK,
        RoleMap({"zc-admins": "admin"}),
        tenant_id="acme",
        client_secret=ClientSecret("x"),
        jwks_refresh_interval=30,
    )
    provider = OIDCProvider(made, clock=clock)
    keys = provider._keys
    assert keys.key_for("rsa-1", "RS256").kid == "rsa-1"
    assert idp.requests["jwks"] == 1
    for _ in range(3):
        with pytest.raises(OIDCError, match="not among the provider's keys"):
            keys.key_for("nope", "RS256")
    assert idp.requests["jwks"] == 2
    clock.advance(29.9)
    with pytest.raises(OIDCError):
        keys.key_for("nope", "RS256")
    assert idp.requests["jwks"] == 2
    clock.advance(0.1)
    with pytest.raises(OIDCError):
        keys.key_for("nope", "RS256")
    assert idp.requests["jwks"] == 3
    # An EC key is never used for an RS algorithm.
    with pytest.raises(OIDCError):
        keys.key_for("ec-1", "RS256")
    assert keys.key_for("ec-1", "ES256").kid == "ec-1"


def test_the_test_provider_runs_as_a_process() -> None:
    """python -m tests._oidc_provider prints its issuer and serves discovery until terminated."""
    import subprocess
    import sys

    from tests._serving import ROOT, stop

    proc = subprocess.Popen(
        [sys.executable, "-m", "tests._oidc_provider", "--groups", "a,b"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        document = httpx.get(info["issuer"] + "/.well-known/openid-configuration")
        assert document.json()["issuer"] == info["issuer"]
        assert info["client_id"] == "zerfoo-console"
    finally:
        stop(proc)
        assert proc.stdout is not None
        proc.stdout.close()
    assert proc.returncode == 0
