"""
Console roles, and the map from an IdP's group or role claims to them.

An identity provider sends a user's groups (SAML: an attribute such as
``groups`` or ``memberOf``; OpenID Connect: a claim such as ``groups`` or
``roles``). A `RoleMap`, set per provider, says which group gives which
`Role`; a user none of whose groups is in the map gets no access at all.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Iterable, Mapping

from zerfoo_cloud.errors import InvalidConfigError

__all__ = [
    "DEFAULT_GROUP_ATTRIBUTES",
    "DEFAULT_GROUP_CLAIMS",
    "MAX_GROUPS",
    "MAX_GROUP_LENGTH",
    "Role",
    "RoleMap",
    "pick_groups",
]

#: SAML attribute names (compared case-insensitively) read for a user's
#: groups unless a provider names its own.
DEFAULT_GROUP_ATTRIBUTES = (
    "groups",
    "memberOf",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
)
#: OpenID Connect ID token claims read for a user's groups unless a provider
#: names its own.
DEFAULT_GROUP_CLAIMS = ("groups", "roles")
#: At most this many groups of a user are kept; the rest are ignored.
MAX_GROUPS = 1000
#: A group name longer than this many characters is ignored.
MAX_GROUP_LENGTH = 1024


class Role(enum.Enum):
    """
    What a console user may do.

    - ``ADMIN``: everything a tenant admin may do, in its own tenant.
    - ``VIEWER``: read its own tenant's pages, change nothing.
    - ``OPERATOR``: run the whole service (every tenant), without a tenant
      of its own.

    .. versionadded:: 0.1.0
    """

    ADMIN = "admin"
    VIEWER = "viewer"
    OPERATOR = "operator"


#: When a user's groups map to several roles, the first of these wins.
_PRECEDENCE = (Role.OPERATOR, Role.ADMIN, Role.VIEWER)


def _role_of(group: str, value: object) -> Role:
    if isinstance(value, Role):
        return value
    try:
        return Role(value)
    except ValueError:
        names = ", ".join(repr(r.value) for r in Role)
        msg = f"role map: group {group!r} maps to {value!r}, not one of {names}"
        raise InvalidConfigError(msg, field="roles") from None


class RoleMap:
    """
    Which IdP group (or role claim value) gives which `Role`.

    Built from a mapping such as ``{"zc-admins": "admin", "zc-viewers":
    "viewer"}``; group names are compared exactly (case matters, as IdPs
    send them). A user whose groups match several entries gets the
    strongest role (operator, then admin, then viewer); a user none of
    whose groups matches gets ``None``: no access.

    Raises:
        InvalidConfigError: a mapping that is not one of strings to role
            names, or an empty group name.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_roles",)

    def __init__(self, roles: Mapping[str, str | Role]) -> None:
        if not isinstance(roles, Mapping):
            msg = "role map: a mapping of group names to roles is needed"
            raise InvalidConfigError(msg, field="roles")
        checked: dict[str, Role] = {}
        for group, value in roles.items():
            if not isinstance(group, str) or not 0 < len(group) <= MAX_GROUP_LENGTH:
                msg = f"role map: group names are 1 to {MAX_GROUP_LENGTH} characters"
                raise InvalidConfigError(msg, field="roles")
            checked[group] = _role_of(group, value)
        self._roles = types.MappingProxyType(checked)

    @property
    def roles(self) -> Mapping[str, Role]:
        """
        The map, read-only: group name to role.
        """
        return self._roles

    def __repr__(self) -> str:
        shown = {group: role.value for group, role in self._roles.items()}
        return f"RoleMap({shown!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RoleMap):
            return NotImplemented
        return dict(self._roles) == dict(other._roles)

    def __hash__(self) -> int:
        return hash(frozenset(self._roles.items()))

    def role_for(self, groups: Iterable[str]) -> Role | None:
        """
        The strongest role any of *groups* gives, or ``None`` when none of
        them is in the map.
        """
        found = {self._roles[g] for g in groups if g in self._roles}
        for role in _PRECEDENCE:
            if role in found:
                return role
        return None


def pick_groups(values: Mapping[str, object], names: Iterable[str]) -> tuple[str, ...]:
    """
    The user's groups: every string value, in order and without repeats, of
    the entries of *values* (claims or attributes) whose key is one of
    *names* (compared case-insensitively). A single string counts as one
    group; anything else that is not a string is ignored, as are groups over
    `MAX_GROUP_LENGTH` characters and any beyond the first `MAX_GROUPS`.
    """
    wanted = {name.lower() for name in names}
    seen: dict[str, None] = {}
    for key, value in values.items():
        if not isinstance(key, str) or key.lower() not in wanted:
            continue
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            continue
        for item in items:
            if isinstance(item, str) and 0 < len(item) <= MAX_GROUP_LENGTH:
                seen.setdefault(item, None)
                if len(seen) >= MAX_GROUPS:
                    return tuple(seen)
    return tuple(seen)
