"""
Reading a verified assertion: every check of its content, and the
`SSOIdentity` it vouches for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zerfoo_cloud.sso import _ns
from zerfoo_cloud.sso._attributes import pick_email, read_attributes
from zerfoo_cloud.sso._conditions import check_conditions
from zerfoo_cloud.sso._response_checks import check_issuer, check_response
from zerfoo_cloud.sso._subject_confirmation import confirmed_subject
from zerfoo_cloud.sso._time_window import check_not_future, optional_instant
from zerfoo_cloud.sso._xml import text_of
from zerfoo_cloud.sso.errors import SAMLExpiredError, SAMLStructureError
from zerfoo_cloud.sso.identity import SSOIdentity

if TYPE_CHECKING:
    from lxml import etree

    from zerfoo_cloud.sso._expectations import Expectations

_AUTHN_STATEMENT = _ns.tag(_ns.ASSERTION, "AuthnStatement")


def _login_session(
    assertion: etree._Element, now: float, clock_skew: float
) -> tuple[str, float | None]:
    for statement in assertion.iterchildren(_AUTHN_STATEMENT):
        session_expires_at = optional_instant(
            statement,
            "SessionNotOnOrAfter",
            "the AuthnStatement's SessionNotOnOrAfter",
        )
        if session_expires_at is not None and now - clock_skew >= session_expires_at:
            msg = f"the login session expired at {statement.get('SessionNotOnOrAfter')}"
            raise SAMLExpiredError(msg)
        return statement.get("SessionIndex", ""), session_expires_at
    return "", None


def read_assertion(
    root: etree._Element,
    assertion: etree._Element,
    now: float,
    request_id: str | None,
    expected: Expectations,
    *,
    tenant_id: str,
    signed_response: bool,
) -> tuple[str, float, SSOIdentity]:
    """
    Check the verified Response *root* and its *assertion* against
    *expected*, and return the assertion's ID, the time until which the
    replay cache must remember it, and the identity for *tenant_id*.

    Raises:
        SAMLError: the subclass names the failed check.
    """
    check_response(root, now, request_id, expected)
    # An unsigned Response's InResponseTo is the attacker's to choose: only
    # a signed one may show that the assertion answers the SP's request.
    answered = root.get("InResponseTo") if signed_response else None
    if assertion.get("Version") != "2.0":
        msg = f"the Assertion has Version {assertion.get('Version')!r}, not '2.0'"
        raise SAMLStructureError(msg)
    assertion_id = assertion.get("ID")
    if not assertion_id:
        msg = "the Assertion has no ID"
        raise SAMLStructureError(msg)
    check_issuer(assertion, expected.idp_entity_id, required=True)
    check_not_future(assertion, now, expected.clock_skew)
    name_id, confirmed_until = confirmed_subject(
        assertion, now, request_id, answered, expected
    )
    conditions_until = check_conditions(assertion, now, expected)
    expires_at = min(t for t in (confirmed_until, conditions_until) if t is not None)
    session_index, session_expires_at = _login_session(
        assertion, now, expected.clock_skew
    )
    subject = text_of(name_id).strip()
    if not subject:
        msg = "the assertion's NameID is empty"
        raise SAMLStructureError(msg)
    name_id_format = name_id.get("Format", "")
    values, friendly = read_attributes(assertion)
    identity = SSOIdentity(
        subject=subject,
        tenant_id=tenant_id,
        email=pick_email(values, friendly, subject, name_id_format),
        attributes=values,
        expires_at=expires_at,
        name_id_format=name_id_format,
        session_index=session_index,
        session_expires_at=session_expires_at,
        issuer=expected.idp_entity_id,
        assertion_id=assertion_id,
    )
    return assertion_id, expires_at + expected.clock_skew, identity
