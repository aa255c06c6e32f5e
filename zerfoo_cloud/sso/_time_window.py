"""
SAML times: reading an ``xs:dateTime`` and checking validity windows with a
tolerated clock skew.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from zerfoo_cloud.sso._xml import local_name
from zerfoo_cloud.sso.errors import (
    SAMLExpiredError,
    SAMLNotYetValidError,
    SAMLStructureError,
    SAMLSubjectConfirmationError,
)

if TYPE_CHECKING:
    from lxml import etree

_INSTANT = re.compile(
    r"(-?\d{4,})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?"
)


def parse_instant(text: str | None, what: str) -> float:
    """
    Return the Unix time of the ``xs:dateTime`` *text*.

    Raises:
        SAMLStructureError: *text* is missing or not a valid date and time;
            the message names it as *what*.
    """
    match = _INSTANT.fullmatch((text or "").strip())
    if match is None:
        msg = f"{what} {text!r} is not an xs:dateTime"
        raise SAMLStructureError(msg)
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=timezone.utc,
        )
    except ValueError as exc:
        msg = f"{what} {text!r} is not a valid date and time"
        raise SAMLStructureError(msg) from exc
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        moment -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return moment.timestamp() + (float(fraction) if fraction else 0.0)


def optional_instant(element: etree._Element, name: str, what: str) -> float | None:
    """
    Return the Unix time in *element*'s attribute *name*, or ``None`` when
    the attribute is absent.

    Raises:
        SAMLStructureError: the attribute is not a valid ``xs:dateTime``.
    """
    value = element.get(name)
    return None if value is None else parse_instant(value, what)


def check_not_future(element: etree._Element, now: float, clock_skew: float) -> None:
    """
    Refuse *element* when its ``IssueInstant`` is later than *now* plus
    *clock_skew*.

    Raises:
        SAMLStructureError: no valid ``IssueInstant``.
        SAMLNotYetValidError: issued in the future.
    """
    what = local_name(element)
    issued = parse_instant(element.get("IssueInstant"), f"the {what}'s IssueInstant")
    if issued > now + clock_skew:
        msg = f"the {what} was issued in the future ({element.get('IssueInstant')})"
        raise SAMLNotYetValidError(msg)


def check_window(
    element: etree._Element,
    now: float,
    what: str,
    *,
    clock_skew: float,
    required: bool,
) -> float | None:
    """
    Check that *now* lies within *element*'s ``NotBefore`` and
    ``NotOnOrAfter``, each widened by *clock_skew*; return ``NotOnOrAfter``
    (``None`` when it is absent and not *required*).

    Raises:
        SAMLNotYetValidError: before ``NotBefore``.
        SAMLExpiredError: at or after ``NotOnOrAfter``.
        SAMLSubjectConfirmationError: ``NotOnOrAfter`` is *required* and
            absent.
        SAMLStructureError: a time is not a valid ``xs:dateTime``.
    """
    not_before = optional_instant(element, "NotBefore", f"{what} NotBefore")
    not_after = optional_instant(element, "NotOnOrAfter", f"{what} NotOnOrAfter")
    if not_before is not None and now + clock_skew < not_before:
        msg = f"{what} is not valid before {element.get('NotBefore')}"
        raise SAMLNotYetValidError(msg)
    if not_after is None:
        if required:
            msg = f"{what} has no NotOnOrAfter"
            raise SAMLSubjectConfirmationError(msg)
        return None
    if now - clock_skew >= not_after:
        msg = f"{what} expired at {element.get('NotOnOrAfter')}"
        raise SAMLExpiredError(msg)
    return not_after
