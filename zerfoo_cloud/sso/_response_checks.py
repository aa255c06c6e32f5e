"""
Checks of the Response envelope: its status, the one assertion it holds,
where signatures sit, its Issuer, Destination and InResponseTo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zerfoo_cloud.sso import _ns
from zerfoo_cloud.sso._encryption import ENCRYPTED_ASSERTION
from zerfoo_cloud.sso._signature import SIGNATURE
from zerfoo_cloud.sso._time_window import check_not_future
from zerfoo_cloud.sso._xml import local_name, text_of
from zerfoo_cloud.sso.errors import (
    SAMLDestinationError,
    SAMLInResponseToError,
    SAMLIssuerError,
    SAMLSignatureError,
    SAMLStatusError,
    SAMLStructureError,
)

if TYPE_CHECKING:
    from lxml import etree

    from zerfoo_cloud.sso._expectations import Expectations

_P = _ns.PROTOCOL
RESPONSE = _ns.tag(_P, "Response")
ASSERTION = _ns.tag(_ns.ASSERTION, "Assertion")
_STATUS = _ns.tag(_P, "Status")
_STATUS_CODE = _ns.tag(_P, "StatusCode")
_STATUS_MESSAGE = _ns.tag(_P, "StatusMessage")
_ISSUER = _ns.tag(_ns.ASSERTION, "Issuer")


def check_status(root: etree._Element) -> None:
    """
    Refuse a Response whose status is not Success.

    Raises:
        SAMLStructureError: no Status.
        SAMLStatusError: a status other than Success, with its codes and
            (at most 200 characters of) its message.
    """
    status = root.find(_STATUS)
    code = None if status is None else status.find(_STATUS_CODE)
    if code is None:
        msg = "the Response has no Status"
        raise SAMLStructureError(msg)
    value = code.get("Value", "")
    if value != _ns.STATUS_SUCCESS:
        sub = code.find(_STATUS_CODE)
        message = status.find(_STATUS_MESSAGE)  # type: ignore[union-attr]
        raise SAMLStatusError(
            value,
            "" if sub is None else sub.get("Value", ""),
            "" if message is None else text_of(message).strip()[:200],
        )


def locate_assertion(root: etree._Element) -> tuple[etree._Element, bool]:
    """
    Return the one assertion of the one Response in *root*, and whether it
    is encrypted.

    Raises:
        SAMLStructureError: not exactly one Response, not exactly one
            assertion, or the assertion is not a direct child of *root*.
    """
    responses = sum(1 for _ in root.iter(RESPONSE))
    if responses != 1:
        msg = f"the document holds {responses} Responses; exactly one is accepted"
        raise SAMLStructureError(msg)
    found = list(root.iter(ASSERTION, ENCRYPTED_ASSERTION))
    if len(found) != 1:
        msg = f"the Response holds {len(found)} assertions; exactly one is accepted"
        raise SAMLStructureError(msg)
    assertion = found[0]
    if assertion.getparent() is not root:
        msg = "the assertion is not a direct child of the Response"
        raise SAMLStructureError(msg)
    return assertion, assertion.tag == ENCRYPTED_ASSERTION


def own_signature(
    root: etree._Element, element: etree._Element
) -> etree._Element | None:
    """
    Return the signature of *element* (the Response or the Assertion), or
    ``None`` when it has none, after checking that every signature in
    *root* sits where one is accepted.

    Raises:
        SAMLSignatureError: a signature sits elsewhere, or *element* has
            more than one.
    """
    signatures = list(root.iter(SIGNATURE))
    own = [s for s in signatures if s.getparent() is element]
    for signature in signatures:
        parent = signature.getparent()
        if parent is not root and (parent is None or parent.tag != ASSERTION):
            msg = (
                "a signature sits inside "
                f"{'nothing' if parent is None else parent.tag!r}, where no "
                "signature is accepted"
            )
            raise SAMLSignatureError(msg)
    if len(own) > 1:
        msg = f"the {local_name(element)} has {len(own)} signatures"
        raise SAMLSignatureError(msg)
    return own[0] if own else None


def check_issuer(
    element: etree._Element, idp_entity_id: str, *, required: bool
) -> None:
    """
    Refuse *element* when its Issuer is not *idp_entity_id*, or when it has
    none and one is *required*.

    Raises:
        SAMLIssuerError: the Issuer is wrong or missing.
    """
    issuer = element.find(_ISSUER)
    what = local_name(element)
    if issuer is None:
        if required:
            msg = f"the {what} has no Issuer"
            raise SAMLIssuerError(msg)
        return
    value = text_of(issuer).strip()
    if value != idp_entity_id:
        msg = f"the {what} was issued by {value!r}, not by the IdP {idp_entity_id!r}"
        raise SAMLIssuerError(msg)


def check_response(
    root: etree._Element,
    now: float,
    request_id: str | None,
    expected: Expectations,
) -> None:
    """
    Check the Response's Issuer (if any), IssueInstant, Destination (if
    any) and InResponseTo (if any, against *request_id*).

    Raises:
        SAMLError: the subclass names the failed check.
    """
    check_issuer(root, expected.idp_entity_id, required=False)
    check_not_future(root, now, expected.clock_skew)
    destination = root.get("Destination")
    acs_url = expected.acs_url
    if acs_url is not None and destination is not None and destination != acs_url:
        msg = (
            f"the Response's Destination {destination!r} is not this SP's "
            f"ACS URL {acs_url!r}"
        )
        raise SAMLDestinationError(msg)
    answered = root.get("InResponseTo")
    if request_id is not None and answered is not None and answered != request_id:
        msg = (
            f"the Response answers request {answered!r}, not the request "
            f"{request_id!r} this SP sent"
        )
        raise SAMLInResponseToError(msg)
