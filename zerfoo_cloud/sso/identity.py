"""
The user an identity provider vouched for: `SSOIdentity`.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping

import attrs

__all__ = ["SSOIdentity"]


def _freeze(attributes: Mapping[str, object]) -> Mapping[str, tuple[str, ...]]:
    frozen: dict[str, tuple[str, ...]] = {}
    for name, values in attributes.items():
        if isinstance(values, str):
            frozen[str(name)] = (values,)
        else:
            frozen[str(name)] = tuple(str(v) for v in values)  # type: ignore[attr-defined]
    return types.MappingProxyType(frozen)


def _groups(values: Iterable[str]) -> tuple[str, ...]:
    unique: list[str] = []
    for value in values:
        if value not in unique:
            unique.append(str(value))
    return tuple(unique)


@attrs.frozen
class SSOIdentity:
    """
    A user the IdP vouched for.

    Attributes:
        subject: the NameID, as its full text content (a comment inside it
            never truncates it).
        tenant_id: the tenant whose SSO provider accepted the assertion.
        email: the e-mail address: from the first attribute in
            `EMAIL_ATTRIBUTES` that has a value, else the NameID when its
            format is ``emailAddress`` (or unspecified and it holds an ``@``),
            else ``""``.
        attributes: every attribute of the assertion, by its ``Name``, as a
            read-only mapping of *name* to a tuple of its values in document
            order (multi-valued attributes keep every value; an attribute
            sent twice has its values joined).
        expires_at: Unix seconds at which the assertion stops being valid:
            the earliest NotOnOrAfter of its Conditions and of the bearer
            SubjectConfirmationData used.
        name_id_format: the NameID's ``Format``, or ``""``.
        session_index: the AuthnStatement's ``SessionIndex``, or ``""``
            (needed for single logout).
        session_expires_at: the AuthnStatement's ``SessionNotOnOrAfter`` in
            Unix seconds (the IdP's limit on the login session), or ``None``.
        issuer: the IdP's entity id.
        assertion_id: the assertion's ID (what the replay cache records).
        groups: the user's groups or roles as the IdP sent them (SAML: the
            provider's group attributes; OpenID Connect: its group claims),
            in order, without repeats; a `zerfoo_cloud.sso.RoleMap` turns
            them into a console role.

    .. versionadded:: 0.1.0
    """

    subject: str
    tenant_id: str
    email: str
    attributes: Mapping[str, tuple[str, ...]] = attrs.field(
        converter=_freeze, hash=False
    )
    expires_at: float
    name_id_format: str = attrs.field(default="", kw_only=True)
    session_index: str = attrs.field(default="", kw_only=True)
    session_expires_at: float | None = attrs.field(default=None, kw_only=True)
    issuer: str = attrs.field(default="", kw_only=True)
    assertion_id: str = attrs.field(default="", kw_only=True)
    groups: tuple[str, ...] = attrs.field(default=(), kw_only=True, converter=_groups)
