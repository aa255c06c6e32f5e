"""
The assertion's Conditions: its validity window and its audiences.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zerfoo_cloud.sso import _ns
from zerfoo_cloud.sso._time_window import check_window
from zerfoo_cloud.sso._xml import text_of
from zerfoo_cloud.sso.errors import SAMLAudienceError, SAMLStructureError

if TYPE_CHECKING:
    from lxml import etree

    from zerfoo_cloud.sso._expectations import Expectations

_A = _ns.ASSERTION
_CONDITIONS = _ns.tag(_A, "Conditions")
_AUDIENCE_RESTRICTION = _ns.tag(_A, "AudienceRestriction")
_AUDIENCE = _ns.tag(_A, "Audience")
_KNOWN_CONDITIONS = frozenset(
    {_AUDIENCE_RESTRICTION, _ns.tag(_A, "OneTimeUse"), _ns.tag(_A, "ProxyRestriction")}
)


def check_conditions(
    assertion: etree._Element, now: float, expected: Expectations
) -> float | None:
    """
    Check the assertion's Conditions and return their ``NotOnOrAfter``
    (``None`` when absent): *now* within their window, no condition this
    SP does not know, and, unless ``expected.sp_entity_id`` is ``None``, at
    least one AudienceRestriction, each naming this SP.

    Raises:
        SAMLAudienceError: this SP is not an audience.
        SAMLStructureError: an unknown condition or a malformed time.
        SAMLNotYetValidError, SAMLExpiredError: outside the window.
    """
    sp_entity_id = expected.sp_entity_id
    conditions = assertion.find(_CONDITIONS)
    if conditions is None:
        if sp_entity_id is not None:
            msg = "the assertion has no Conditions, so no AudienceRestriction"
            raise SAMLAudienceError(msg)
        return None
    not_after = check_window(
        conditions,
        now,
        "the assertion's Conditions",
        clock_skew=expected.clock_skew,
        required=False,
    )
    restrictions = 0
    for condition in conditions:
        if not isinstance(condition.tag, str):
            continue
        if condition.tag not in _KNOWN_CONDITIONS:
            msg = f"the assertion has a Condition this SP does not know: {condition.tag!r}"
            raise SAMLStructureError(msg)
        if condition.tag != _AUDIENCE_RESTRICTION:
            continue
        restrictions += 1
        audiences = [text_of(a).strip() for a in condition.iterchildren(_AUDIENCE)]
        if sp_entity_id is not None and sp_entity_id not in audiences:
            msg = (
                f"this SP ({sp_entity_id!r}) is not an audience of the "
                f"assertion (audiences: {audiences!r})"
            )
            raise SAMLAudienceError(msg)
    if sp_entity_id is not None and not restrictions:
        msg = "the assertion has no AudienceRestriction"
        raise SAMLAudienceError(msg)
    return not_after
