"""
Role mapping of SAML logins: the groups attribute, the role map, and the
refusal of users with no role.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.admin._client import Client
from tests.admin.conftest import provider_for
from tests.admin.test_sso_login import answer, start
from tests.conftest import FakeClock
from tests.sso._idp import KeyPair
from zerfoo_cloud import AuditResult, InvalidConfigError
from zerfoo_cloud.http.admin import AdminAPI, SessionSigner
from zerfoo_cloud.sso import RoleMap
from zerfoo_cloud.stores.memory import MemoryAuditStore


def client_with(
    make_api: Callable[..., AdminAPI],
    idp_keys: KeyPair,
    clock: FakeClock,
    roles: dict[str, str],
) -> Client:
    """
    A client of an app whose acme SAML provider maps groups with *roles*.
    """
    provider = provider_for("acme", idp_keys, clock)
    provider.role_map = RoleMap(roles)
    return Client(make_api(sso={"acme": provider}))


@pytest.mark.parametrize(
    ("roles", "role"),
    [({"admins": "admin"}, "admin"), ({"users": "viewer"}, "viewer")],
)
def test_saml_groups_map_to_roles(
    make_api: Callable[..., AdminAPI],
    idp_keys: KeyPair,
    clock: FakeClock,
    sessions: SessionSigner,
    roles: dict[str, str],
    role: str,
) -> None:
    """The test IdP sends groups admins and users; the role map decides the role."""
    client = client_with(make_api, idp_keys, clock, roles)
    response = answer(client, idp_keys, start(client))
    assert response.status_code == 303, response.text
    session = sessions.verify(response.json()["token"])
    assert (session.role, session.via) == (role, "saml")


def test_saml_user_without_a_role_is_refused(
    make_api: Callable[..., AdminAPI],
    idp_keys: KeyPair,
    clock: FakeClock,
    audit_store: MemoryAuditStore,
) -> None:
    """No group in the map: 403, a page for browsers, and an audit entry with the subject."""
    client = client_with(make_api, idp_keys, clock, {"zc-admins": "admin"})
    response = answer(client, idp_keys, start(client))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "no_role"
    assert "zc_session" not in response.headers.get("set-cookie", "")
    entry = audit_store.all()[-1]
    assert (entry.result, entry.status_code) == (AuditResult.DENIED, 403)
    assert entry.resource == "session/acme by sso:alice@example.com (no_role)"


def test_saml_groups_are_read_from_the_identity(
    make_api: Callable[..., AdminAPI], idp_keys: KeyPair, clock: FakeClock
) -> None:
    """SSOIdentity.groups holds the groups attribute's values."""
    provider = provider_for("acme", idp_keys, clock)
    from tests.admin.test_sso_login import idp_answer

    client = Client(make_api(sso={"acme": provider}))
    pending = start(client)
    identity = provider.validate_assertion(
        idp_answer(idp_keys, pending.request_id), request_id=pending.request_id
    )
    assert identity.groups == ("admins", "users")


def test_a_tenant_saml_provider_may_not_give_operator(
    make_api: Callable[..., AdminAPI], idp_keys: KeyPair, clock: FakeClock
) -> None:
    """A tenant's IdP can never make operators: refused when the app is made."""
    provider = provider_for("acme", idp_keys, clock)
    provider.role_map = RoleMap({"admins": "operator"})
    with pytest.raises(InvalidConfigError, match="operator"):
        make_api(sso={"acme": provider})
