"""
Signing a tenant's people out: the stamps on a `TenantRecord` before which
its console and admin-API sessions are refused.

A session carries when it was issued; the console and the admin API read
the tenant record on every request and refuse a session issued before
`TenantRecord.sessions_valid_from` its subject. `signed_out` sets the
stamps; `TenantManager.sign_out` stores and audits them.
"""

from __future__ import annotations

import attrs

from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.tenant_records import MAX_SIGNED_OUT_SUBJECTS, TenantRecord

__all__ = [
    "MAX_SUBJECT_LENGTH",
    "SESSION_LIFETIME_BOUND",
    "check_subject",
    "signed_out",
]

#: A session's subject (the SAML NameID, the OIDC ``sub``) has at most this
#: many characters.
MAX_SUBJECT_LENGTH = 512
#: No session lives longer than this many seconds (one day), so a stamp this
#: old refuses nothing and is dropped.
SESSION_LIFETIME_BOUND = 86_400


def check_subject(subject: object) -> str:
    """
    *subject* if it is 1 to `MAX_SUBJECT_LENGTH` characters.

    Raises:
        InvalidConfigError: it is not.
    """
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT_LENGTH:
        msg = f"the subject must be 1 to {MAX_SUBJECT_LENGTH} characters"
        raise InvalidConfigError(msg, field="subject")
    return subject


def signed_out(record: TenantRecord, subject: str | None, now: float) -> TenantRecord:
    """
    *record* with every session issued before *now* refused: the whole
    tenant's (*subject* ``None``) or one person's. Stamps older than any
    session can be are dropped.

    Raises:
        InvalidConfigError: *subject* is malformed, or `MAX_SIGNED_OUT_SUBJECTS`
            people are signed out one by one already (sign the tenant out).
    """
    live = {
        s: t for s, t in record.subjects_not_before if t > now - SESSION_LIFETIME_BOUND
    }
    if subject is None:
        live = {s: t for s, t in live.items() if t > now}
        return attrs.evolve(
            record,
            sessions_not_before=max(now, record.sessions_not_before),
            subjects_not_before=tuple(live.items()),
        )
    live[check_subject(subject)] = max(now, live.get(subject, 0.0))
    if len(live) > MAX_SIGNED_OUT_SUBJECTS:
        msg = (
            f"at most {MAX_SIGNED_OUT_SUBJECTS} people may be signed out one by "
            "one at a time; sign the whole tenant out instead"
        )
        raise InvalidConfigError(msg, field="subject")
    return attrs.evolve(record, subjects_not_before=tuple(live.items()))
