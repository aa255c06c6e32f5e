"""
The attributes of an assertion, and the user's e-mail address among them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zerfoo_cloud.sso import _ns
from zerfoo_cloud.sso._xml import text_of

if TYPE_CHECKING:
    from lxml import etree

_A = _ns.ASSERTION
_ATTRIBUTE_STATEMENT = _ns.tag(_A, "AttributeStatement")
_ATTRIBUTE = _ns.tag(_A, "Attribute")
_ATTRIBUTE_VALUE = _ns.tag(_A, "AttributeValue")

#: Attribute names (compared case-insensitively, Name or FriendlyName) under
#: which IdPs send the user's e-mail address, most specific first.
EMAIL_ATTRIBUTES = (
    "email",
    "mail",
    "emailaddress",
    "e-mail",
    "user.email",
    "urn:oid:0.9.2342.19200300.100.1.3",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "http://schemas.xmlsoap.org/claims/emailaddress",
    "urn:oid:1.2.840.113549.1.9.1",
)


def read_attributes(
    assertion: etree._Element,
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """
    Return the assertion's attribute values by ``Name`` (in document order,
    an attribute sent twice joined), and each lower-cased ``FriendlyName``
    mapped to the first ``Name`` it was given to.
    """
    values: dict[str, list[str]] = {}
    friendly: dict[str, str] = {}
    for statement in assertion.iterchildren(_ATTRIBUTE_STATEMENT):
        for attribute in statement.iterchildren(_ATTRIBUTE):
            name = attribute.get("Name")
            if not name:
                continue
            bucket = values.setdefault(name, [])
            bucket.extend(text_of(v) for v in attribute.iterchildren(_ATTRIBUTE_VALUE))
            nick = attribute.get("FriendlyName")
            if nick:
                friendly.setdefault(nick.lower(), name)
    return values, friendly


def pick_email(
    values: dict[str, list[str]],
    friendly: dict[str, str],
    subject: str,
    name_id_format: str,
) -> str:
    """
    Return the user's e-mail address: the first non-blank value of the first
    attribute in `EMAIL_ATTRIBUTES` that has one, else *subject* when the
    NameID format says (or, unspecified, it looks like) an address, else
    ``""``.
    """
    by_lower = {name.lower(): name for name in reversed(values)}
    for wanted in EMAIL_ATTRIBUTES:
        name = by_lower.get(wanted) or friendly.get(wanted)
        if name is not None:
            for value in values[name]:
                if value.strip():
                    return value.strip()
    if name_id_format == _ns.NAMEID_EMAIL or (
        name_id_format in ("", _ns.NAMEID_UNSPECIFIED) and "@" in subject
    ):
        return subject
    return ""
