"""
The assertion's Subject: its NameID, confirmed by a bearer
SubjectConfirmation addressed to this SP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zerfoo_cloud.errors import SAMLError
from zerfoo_cloud.sso import _ns
from zerfoo_cloud.sso._time_window import check_window
from zerfoo_cloud.sso.errors import (
    SAMLInResponseToError,
    SAMLRecipientError,
    SAMLStructureError,
    SAMLSubjectConfirmationError,
)

_A = _ns.ASSERTION
_SUBJECT = _ns.tag(_A, "Subject")
_NAME_ID = _ns.tag(_A, "NameID")
_SUBJECT_CONFIRMATION = _ns.tag(_A, "SubjectConfirmation")
_SUBJECT_CONFIRMATION_DATA = _ns.tag(_A, "SubjectConfirmationData")

if TYPE_CHECKING:
    from lxml import etree

    from zerfoo_cloud.sso._expectations import Expectations


def _confirm(
    confirmation: etree._Element,
    now: float,
    request_id: str | None,
    answered: str | None,
    expected: Expectations,
) -> float:
    data = confirmation.find(_SUBJECT_CONFIRMATION_DATA)
    if data is None:
        msg = "the bearer SubjectConfirmation has no SubjectConfirmationData"
        raise SAMLSubjectConfirmationError(msg)
    not_after = check_window(
        data,
        now,
        "the bearer SubjectConfirmationData",
        clock_skew=expected.clock_skew,
        required=True,
    )
    assert not_after is not None
    recipient = data.get("Recipient")
    if recipient is None:
        msg = "the bearer SubjectConfirmationData has no Recipient"
        raise SAMLRecipientError(msg)
    if expected.acs_url is not None and recipient != expected.acs_url:
        msg = (
            f"the bearer SubjectConfirmationData's Recipient {recipient!r} is "
            f"not this SP's ACS URL {expected.acs_url!r}"
        )
        raise SAMLRecipientError(msg)
    in_response_to = data.get("InResponseTo")
    if request_id is not None:
        if in_response_to is not None and in_response_to != request_id:
            msg = (
                "the bearer SubjectConfirmationData answers request "
                f"{in_response_to!r}, not the request {request_id!r} this SP sent"
            )
            raise SAMLInResponseToError(msg)
        if in_response_to is None and answered is None:
            msg = (
                f"expected the answer to request {request_id!r}, got an "
                "unsolicited (IdP-initiated) response"
            )
            raise SAMLInResponseToError(msg)
    return not_after


def confirmed_subject(
    assertion: etree._Element,
    now: float,
    request_id: str | None,
    answered: str | None,
    expected: Expectations,
) -> tuple[etree._Element, float]:
    """
    Return the assertion's NameID and the ``NotOnOrAfter`` of the first
    bearer SubjectConfirmation that passes: within its time window, its
    Recipient this SP's ACS URL, and answering *request_id* (directly, or
    through the signed Response's *answered* id).

    Raises:
        SAMLStructureError: no Subject with a NameID.
        SAMLSubjectConfirmationError: no bearer confirmation.
        SAMLError: why the first bearer confirmation failed, when none
            passes.
    """
    subject = assertion.find(_SUBJECT)
    name_id = None if subject is None else subject.find(_NAME_ID)
    if subject is None or name_id is None:
        msg = (
            "the assertion has no Subject with a NameID (EncryptedID is not supported)"
        )
        raise SAMLStructureError(msg)
    bearers = [
        c
        for c in subject.iterchildren(_SUBJECT_CONFIRMATION)
        if c.get("Method") == _ns.CM_BEARER
    ]
    if not bearers:
        msg = "the assertion has no bearer SubjectConfirmation"
        raise SAMLSubjectConfirmationError(msg)
    errors: list[SAMLError] = []
    for confirmation in bearers:
        try:
            return name_id, _confirm(confirmation, now, request_id, answered, expected)
        except SAMLError as exc:  # noqa: PERF203 - one or two confirmations
            errors.append(exc)
    raise errors[0]
