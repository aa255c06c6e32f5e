"""
SAML 2.0 Web SSO, service-provider side: validating the IdP's Response.
"""

from __future__ import annotations

import hashlib
import re
import time
import types
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.errors import InvalidConfigError, SAMLError
from zerfoo_cloud.sso import _ns
from zerfoo_cloud.sso._encryption import ENCRYPTED_ASSERTION, Decryptor
from zerfoo_cloud.sso._signature import SIGNATURE, PinnedKeys, register_ids
from zerfoo_cloud.sso._xml import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_SIZE,
    check_depth,
    decode_message,
    local_name,
    parse_xml,
    text_of,
)
from zerfoo_cloud.sso.errors import (
    SAMLAudienceError,
    SAMLDecryptionError,
    SAMLDestinationError,
    SAMLExpiredError,
    SAMLInResponseToError,
    SAMLIssuerError,
    SAMLNotYetValidError,
    SAMLParseError,
    SAMLRecipientError,
    SAMLReplayError,
    SAMLSignatureError,
    SAMLStatusError,
    SAMLStructureError,
    SAMLSubjectConfirmationError,
)
from zerfoo_cloud.stores.memory import MemoryReplayCache

with needs_extra("saml", "SAML single sign-on"):
    import xmlsec
    from lxml import etree

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.sso.metadata import SAMLMetadata
    from zerfoo_cloud.sso.sp import AuthnRedirect
    from zerfoo_cloud.stores.protocols import ReplayCache

__all__ = [
    "EMAIL_ATTRIBUTES",
    "SAMLProvider",
    "SSOIdentity",
    "SSOProvider",
]

_A = _ns.ASSERTION
_P = _ns.PROTOCOL
_RESPONSE = _ns.tag(_P, "Response")
_STATUS = _ns.tag(_P, "Status")
_STATUS_CODE = _ns.tag(_P, "StatusCode")
_STATUS_MESSAGE = _ns.tag(_P, "StatusMessage")
_ASSERTION = _ns.tag(_A, "Assertion")
_ISSUER = _ns.tag(_A, "Issuer")
_SUBJECT = _ns.tag(_A, "Subject")
_NAME_ID = _ns.tag(_A, "NameID")
_SUBJECT_CONFIRMATION = _ns.tag(_A, "SubjectConfirmation")
_SUBJECT_CONFIRMATION_DATA = _ns.tag(_A, "SubjectConfirmationData")
_CONDITIONS = _ns.tag(_A, "Conditions")
_AUDIENCE_RESTRICTION = _ns.tag(_A, "AudienceRestriction")
_AUDIENCE = _ns.tag(_A, "Audience")
_KNOWN_CONDITIONS = frozenset(
    {_AUDIENCE_RESTRICTION, _ns.tag(_A, "OneTimeUse"), _ns.tag(_A, "ProxyRestriction")}
)
_AUTHN_STATEMENT = _ns.tag(_A, "AuthnStatement")
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

_INSTANT = re.compile(
    r"(-?\d{4,})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?"
)


def _freeze(attributes: Mapping[str, object]) -> Mapping[str, tuple[str, ...]]:
    frozen: dict[str, tuple[str, ...]] = {}
    for name, values in attributes.items():
        if isinstance(values, str):
            frozen[str(name)] = (values,)
        else:
            frozen[str(name)] = tuple(str(v) for v in values)  # type: ignore[attr-defined]
    return types.MappingProxyType(frozen)


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


@runtime_checkable
class SSOProvider(Protocol):
    """
    **Protocol**: an identity provider a tenant's users sign in with.

    `SAMLProvider` is the SAML 2.0 implementation; others (OIDC) provide the
    same two members.

    .. versionadded:: 0.1.0
    """

    @property
    def entity_id(self) -> str:
        """
        The identity provider's entity id.
        """

    def validate_assertion(
        self, data: bytes, *, request_id: str | None = None
    ) -> SSOIdentity:
        """
        Validate what the IdP sent and return the user it vouches for.

        Raises:
            SAMLError: for every rejection (a subclass says why).
        """


def _instant(text: str | None, what: str) -> float:
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


def _optional_instant(element: etree._Element, name: str, what: str) -> float | None:
    value = element.get(name)
    return None if value is None else _instant(value, what)


def _child(parent: etree._Element, tag: str) -> etree._Element | None:
    return parent.find(tag)


def _clean(text: str) -> str:
    return text.strip()


class SAMLProvider:
    """
    A tenant's SAML 2.0 identity provider, as seen by this service provider.

    Args:
        metadata: the IdP (`parse_saml_metadata`); only its certificates are
            trusted to sign.
        tenant_id: the tenant the accepted users belong to.
        sp_entity_id: this SP's entity id; every assertion must name it as an
            Audience. ``None`` skips the audience check (use only in tests).
        acs_url: this SP's assertion consumer service URL; the Response's
            Destination and the bearer Recipient must equal it. ``None``
            skips those checks (use only in tests).
        clock: returns the current Unix time.
        clock_skew: seconds of difference between the IdP's clock and ours
            tolerated on both sides of every validity window.
        replay_cache: where accepted assertion ids are recorded; default, a
            `MemoryReplayCache` of this provider (replays are caught in this
            process only). Pass ``LMDBStores.open(path).replay`` so that
            every worker process catches them.
        allow_sha1: accept RSA-SHA1 signatures and SHA-1 digests, which many
            IdPs still send; off by default.
        sp_private_key: this SP's private key (PEM), to decrypt
            EncryptedAssertions and to sign AuthnRequests. Never shown in a
            repr or a message.
        sp_private_key_password: its password, if it is encrypted.
        sp_certificate: this SP's certificate (PEM), published in the SP
            metadata for signing and encryption.
        enforce_cert_validity: also require the IdP certificate to be within
            its X.509 validity dates. Off by default: metadata certificates
            are pinned keys, and many IdPs sign with expired ones.
        max_size: the largest Response accepted, in bytes of XML.
        sign_authn_requests: sign AuthnRequests; ``None`` follows the IdP's
            ``WantAuthnRequestsSigned``.

    Raises:
        InvalidConfigError: a setting is out of range.
        SAMLMetadataError: a certificate in *metadata* cannot be used.
        SAMLDecryptionError: *sp_private_key* cannot be read.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        metadata: SAMLMetadata,
        tenant_id: str,
        *,
        sp_entity_id: str | None = None,
        acs_url: str | None = None,
        clock: Clock = time.time,
        clock_skew: float = 300,
        replay_cache: ReplayCache | None = None,
        allow_sha1: bool = False,
        sp_private_key: bytes | str | None = None,
        sp_private_key_password: bytes | None = None,
        sp_certificate: str | None = None,
        enforce_cert_validity: bool = False,
        max_size: int = DEFAULT_MAX_SIZE,
        sign_authn_requests: bool | None = None,
    ) -> None:
        if not 0 <= clock_skew <= 3600:  # noqa: PLR2004 - an hour is plenty
            msg = f"clock_skew must be between 0 and 3600 seconds, not {clock_skew}"
            raise InvalidConfigError(msg, field="clock_skew")
        if max_size < 1024:  # noqa: PLR2004 - no Response is smaller
            msg = f"max_size must be at least 1024 bytes, not {max_size}"
            raise InvalidConfigError(msg, field="max_size")
        if not metadata.entity_id:
            msg = "the IdP metadata has no entity id"
            raise InvalidConfigError(msg, field="metadata")
        if not metadata.trusted_certificates:
            msg = "the IdP metadata has no signing certificate"
            raise InvalidConfigError(msg, field="metadata")
        self.metadata = metadata
        self.tenant_id = tenant_id
        self.sp_entity_id = sp_entity_id
        self.acs_url = acs_url
        self.clock_skew = float(clock_skew)
        self.max_size = max_size
        self.sp_certificate = sp_certificate
        self.sign_authn_requests = (
            metadata.want_authn_signed
            if sign_authn_requests is None
            else sign_authn_requests
        )
        self._clock = clock
        self._replay: ReplayCache = (
            MemoryReplayCache() if replay_cache is None else replay_cache
        )
        self._keys = PinnedKeys(
            metadata.trusted_certificates,
            allow_sha1=allow_sha1,
            enforce_cert_validity=enforce_cert_validity,
        )
        if isinstance(sp_private_key, str):
            sp_private_key = sp_private_key.encode("ascii")
        self._sp_private_key = sp_private_key
        self._sp_private_key_password = sp_private_key_password
        self._decryptor = (
            None
            if sp_private_key is None
            else Decryptor(sp_private_key, sp_private_key_password)
        )

    def __repr__(self) -> str:
        return (
            f"SAMLProvider(entity_id={self.entity_id!r}, "
            f"tenant_id={self.tenant_id!r}, sp_entity_id={self.sp_entity_id!r})"
        )

    @property
    def entity_id(self) -> str:
        """
        The IdP's entity id.
        """
        return self.metadata.entity_id

    @property
    def allow_sha1(self) -> bool:
        """
        Whether SHA-1 signatures and digests are accepted.
        """
        return self._keys.allow_sha1

    # -- the SP side ------------------------------------------------------

    def authn_request(
        self,
        *,
        relay_state: str | None = None,
        force_authn: bool = False,
        is_passive: bool = False,
        name_id_format: str | None = None,
    ) -> AuthnRedirect:
        """
        Build an AuthnRequest for the HTTP-Redirect binding.

        Keep the returned ``id`` with the user's session and pass it as
        *request_id* to `validate_assertion`, so that only the answer to
        this request is accepted.

        Args:
            relay_state: opaque state the IdP sends back (at most 80 bytes).
            force_authn: ask the IdP to authenticate the user again.
            is_passive: ask the IdP not to interact with the user.
            name_id_format: the NameID format to ask for; default, the one
                in the IdP metadata (if any).

        Returns:
            The request id and the URL to redirect the user to.

        Raises:
            InvalidConfigError: no *sp_entity_id* or *acs_url*, a
                RelayState over 80 bytes, or signing asked for without
                *sp_private_key*.

        .. versionadded:: 0.1.0
        """
        from zerfoo_cloud.sso.sp import build_authn_redirect

        if self.sp_entity_id is None or self.acs_url is None:
            msg = "an AuthnRequest needs sp_entity_id and acs_url"
            raise InvalidConfigError(msg, field="sp_entity_id")
        return build_authn_redirect(
            sso_url=self.metadata.redirect_sign_on_url or self.metadata.sign_on_url,
            sp_entity_id=self.sp_entity_id,
            acs_url=self.acs_url,
            relay_state=relay_state,
            force_authn=force_authn,
            is_passive=is_passive,
            name_id_format=self.metadata.name_id_format
            if name_id_format is None
            else name_id_format,
            sign_key=self._sp_private_key if self.sign_authn_requests else None,
            sign_key_password=self._sp_private_key_password,
            require_signing=self.sign_authn_requests,
            clock=self._clock,
        )

    def sp_metadata(self, *, valid_for: float | None = None) -> bytes:
        """
        Return this SP's metadata XML (an ``md:EntityDescriptor``) to give
        to the IdP.

        Args:
            valid_for: seconds from now to put in ``validUntil``; ``None``
                leaves it out.

        Raises:
            InvalidConfigError: no *sp_entity_id* or *acs_url*.

        .. versionadded:: 0.1.0
        """
        from zerfoo_cloud.sso.sp import build_sp_metadata

        if self.sp_entity_id is None or self.acs_url is None:
            msg = "SP metadata needs sp_entity_id and acs_url"
            raise InvalidConfigError(msg, field="sp_entity_id")
        return build_sp_metadata(
            sp_entity_id=self.sp_entity_id,
            acs_url=self.acs_url,
            certificate=self.sp_certificate,
            authn_requests_signed=self.sign_authn_requests,
            name_id_format=self.metadata.name_id_format,
            valid_until=None if valid_for is None else self._clock() + valid_for,
        )

    # -- validation -------------------------------------------------------

    def validate_assertion(
        self, data: bytes | str, *, request_id: str | None = None
    ) -> SSOIdentity:
        """
        Validate a SAML Response and return the user it vouches for.

        Args:
            data: the Response XML, or its base64 form (the ``SAMLResponse``
                form field of the HTTP-POST binding).
            request_id: the id of the AuthnRequest this Response must answer
                (``AuthnRedirect.id``). With it, responses to other requests
                and unsolicited (IdP-initiated) responses are refused;
                without it, both are accepted.

        Returns:
            The identity read from the signed assertion.

        Raises:
            SAMLError: a subclass from `zerfoo_cloud.sso.errors` says which
                check failed; nothing else is raised for any input.
            StoreError: the replay cache failed (the assertion was not
                accepted).

        .. versionadded:: 0.1.0
        """
        now = self._clock()
        xml = decode_message(data, max_size=self.max_size)
        root = parse_xml(xml, max_size=self.max_size, what="SAML response")
        try:
            assertion, expires_at, identity = self._validate(root, now, request_id)
        except SAMLError:
            raise
        except (xmlsec.Error, etree.LxmlError, ValueError) as exc:  # pragma: no cover
            # Defensive: a library error on hostile input is still a rejection.
            msg = f"the SAML response cannot be processed: {exc}"
            raise SAMLParseError(msg) from exc
        key = hashlib.sha256(
            f"{self.entity_id}\x00{assertion}".encode("utf-8", "surrogatepass")
        ).hexdigest()
        if not self._replay.add(f"saml:{key}", expires_at, now):
            msg = f"the assertion {assertion!r} was already used (replay)"
            raise SAMLReplayError(msg)
        return identity

    def _validate(
        self, root: etree._Element, now: float, request_id: str | None
    ) -> tuple[str, float, SSOIdentity]:
        if root.tag != _RESPONSE:
            msg = f"not a SAML 2.0 Response: the root element is {root.tag!r}"
            raise SAMLStructureError(msg)
        if root.get("Version") != "2.0":
            msg = f"the Response has Version {root.get('Version')!r}, not '2.0'"
            raise SAMLStructureError(msg)
        self._check_status(root)
        register_ids(root)
        assertion, encrypted = self._locate_assertion(root)
        signed_response = self._verify_signatures(root, root, now)
        if encrypted:
            if self._decryptor is None:
                msg = (
                    "the assertion is encrypted and no sp_private_key is "
                    "configured to decrypt it"
                )
                raise SAMLDecryptionError(msg)
            assertion = self._decryptor.decrypt(assertion)
            check_depth(root, DEFAULT_MAX_DEPTH, what="decrypted SAML response")
            register_ids(root)
            # The plaintext may hold more assertions (or Responses): count again.
            self._locate_assertion(root)
        signed_assertion = self._verify_signatures(root, assertion, now)
        if not (signed_response or signed_assertion):
            msg = "neither the Response nor the Assertion is signed"
            raise SAMLSignatureError(msg)
        return self._read(
            root, assertion, now, request_id, signed_response=signed_response
        )

    @staticmethod
    def _check_status(root: etree._Element) -> None:
        status = _child(root, _STATUS)
        code = None if status is None else _child(status, _STATUS_CODE)
        if code is None:
            msg = "the Response has no Status"
            raise SAMLStructureError(msg)
        value = code.get("Value", "")
        if value != _ns.STATUS_SUCCESS:
            sub = _child(code, _STATUS_CODE)
            message = _child(status, _STATUS_MESSAGE)  # type: ignore[arg-type]
            raise SAMLStatusError(
                value,
                "" if sub is None else sub.get("Value", ""),
                "" if message is None else _clean(text_of(message))[:200],
            )

    @staticmethod
    def _locate_assertion(root: etree._Element) -> tuple[etree._Element, bool]:
        responses = sum(1 for _ in root.iter(_RESPONSE))
        if responses != 1:
            msg = f"the document holds {responses} Responses; exactly one is accepted"
            raise SAMLStructureError(msg)
        found = list(root.iter(_ASSERTION, ENCRYPTED_ASSERTION))
        if len(found) != 1:
            msg = f"the Response holds {len(found)} assertions; exactly one is accepted"
            raise SAMLStructureError(msg)
        assertion = found[0]
        if assertion.getparent() is not root:
            msg = "the assertion is not a direct child of the Response"
            raise SAMLStructureError(msg)
        return assertion, assertion.tag == ENCRYPTED_ASSERTION

    def _verify_signatures(
        self, root: etree._Element, element: etree._Element, now: float
    ) -> bool:
        """
        Verify the signature of *element* (the Response or the Assertion), if
        it has one; return whether it had one.
        """
        signatures = list(root.iter(SIGNATURE))
        own = [s for s in signatures if s.getparent() is element]
        for signature in signatures:
            parent = signature.getparent()
            if parent is not root and (parent is None or parent.tag != _ASSERTION):
                msg = (
                    "a signature sits inside "
                    f"{'nothing' if parent is None else parent.tag!r}, where no "
                    "signature is accepted"
                )
                raise SAMLSignatureError(msg)
        if len(own) > 1:
            msg = f"the {local_name(element)} has {len(own)} signatures"
            raise SAMLSignatureError(msg)
        if not own:
            return False
        self._keys.verify(own[0], element, now)
        return True

    # -- reading the verified assertion -----------------------------------

    def _check_issuer(self, element: etree._Element, *, required: bool) -> None:
        issuer = _child(element, _ISSUER)
        what = local_name(element)
        if issuer is None:
            if required:
                msg = f"the {what} has no Issuer"
                raise SAMLIssuerError(msg)
            return
        value = _clean(text_of(issuer))
        if value != self.entity_id:
            msg = (
                f"the {what} was issued by {value!r}, not by the IdP {self.entity_id!r}"
            )
            raise SAMLIssuerError(msg)

    def _check_not_future(self, element: etree._Element, now: float) -> None:
        what = local_name(element)
        issued = _instant(element.get("IssueInstant"), f"the {what}'s IssueInstant")
        if issued > now + self.clock_skew:
            msg = f"the {what} was issued in the future ({element.get('IssueInstant')})"
            raise SAMLNotYetValidError(msg)

    def _check_window(
        self,
        element: etree._Element,
        now: float,
        what: str,
        *,
        required: bool,
    ) -> float | None:
        not_before = _optional_instant(element, "NotBefore", f"{what} NotBefore")
        not_after = _optional_instant(element, "NotOnOrAfter", f"{what} NotOnOrAfter")
        if not_before is not None and now + self.clock_skew < not_before:
            msg = f"{what} is not valid before {element.get('NotBefore')}"
            raise SAMLNotYetValidError(msg)
        if not_after is None:
            if required:
                msg = f"{what} has no NotOnOrAfter"
                raise SAMLSubjectConfirmationError(msg)
            return None
        if now - self.clock_skew >= not_after:
            msg = f"{what} expired at {element.get('NotOnOrAfter')}"
            raise SAMLExpiredError(msg)
        return not_after

    def _check_response(
        self, root: etree._Element, now: float, request_id: str | None
    ) -> None:
        self._check_issuer(root, required=False)
        self._check_not_future(root, now)
        destination = root.get("Destination")
        if (
            self.acs_url is not None
            and destination is not None
            and destination != self.acs_url
        ):
            msg = (
                f"the Response's Destination {destination!r} is not this SP's "
                f"ACS URL {self.acs_url!r}"
            )
            raise SAMLDestinationError(msg)
        answered = root.get("InResponseTo")
        if request_id is not None and answered is not None and answered != request_id:
            msg = (
                f"the Response answers request {answered!r}, not the request "
                f"{request_id!r} this SP sent"
            )
            raise SAMLInResponseToError(msg)

    def _confirm(
        self,
        confirmation: etree._Element,
        now: float,
        request_id: str | None,
        answered: str | None,
    ) -> float:
        data = _child(confirmation, _SUBJECT_CONFIRMATION_DATA)
        if data is None:
            msg = "the bearer SubjectConfirmation has no SubjectConfirmationData"
            raise SAMLSubjectConfirmationError(msg)
        not_after = self._check_window(
            data, now, "the bearer SubjectConfirmationData", required=True
        )
        assert not_after is not None
        recipient = data.get("Recipient")
        if recipient is None:
            msg = "the bearer SubjectConfirmationData has no Recipient"
            raise SAMLRecipientError(msg)
        if self.acs_url is not None and recipient != self.acs_url:
            msg = (
                f"the bearer SubjectConfirmationData's Recipient {recipient!r} is "
                f"not this SP's ACS URL {self.acs_url!r}"
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

    def _subject(
        self,
        assertion: etree._Element,
        now: float,
        request_id: str | None,
        answered: str | None,
    ) -> tuple[etree._Element, float]:
        subject = _child(assertion, _SUBJECT)
        name_id = None if subject is None else _child(subject, _NAME_ID)
        if subject is None or name_id is None:
            msg = "the assertion has no Subject with a NameID (EncryptedID is not supported)"
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
                return name_id, self._confirm(confirmation, now, request_id, answered)
            except SAMLError as exc:  # noqa: PERF203 - one or two confirmations
                errors.append(exc)
        raise errors[0]

    def _conditions(self, assertion: etree._Element, now: float) -> float | None:
        conditions = _child(assertion, _CONDITIONS)
        if conditions is None:
            if self.sp_entity_id is not None:
                msg = "the assertion has no Conditions, so no AudienceRestriction"
                raise SAMLAudienceError(msg)
            return None
        not_after = self._check_window(
            conditions, now, "the assertion's Conditions", required=False
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
            audiences = [_clean(text_of(a)) for a in condition.iterchildren(_AUDIENCE)]
            if self.sp_entity_id is not None and self.sp_entity_id not in audiences:
                msg = (
                    f"this SP ({self.sp_entity_id!r}) is not an audience of the "
                    f"assertion (audiences: {audiences!r})"
                )
                raise SAMLAudienceError(msg)
        if self.sp_entity_id is not None and not restrictions:
            msg = "the assertion has no AudienceRestriction"
            raise SAMLAudienceError(msg)
        return not_after

    @staticmethod
    def _attributes(
        assertion: etree._Element,
    ) -> tuple[dict[str, list[str]], dict[str, str]]:
        values: dict[str, list[str]] = {}
        friendly: dict[str, str] = {}
        for statement in assertion.iterchildren(_ATTRIBUTE_STATEMENT):
            for attribute in statement.iterchildren(_ATTRIBUTE):
                name = attribute.get("Name")
                if not name:
                    continue
                bucket = values.setdefault(name, [])
                bucket.extend(
                    text_of(v) for v in attribute.iterchildren(_ATTRIBUTE_VALUE)
                )
                nick = attribute.get("FriendlyName")
                if nick:
                    friendly.setdefault(nick.lower(), name)
        return values, friendly

    @staticmethod
    def _email(
        values: dict[str, list[str]],
        friendly: dict[str, str],
        subject: str,
        name_id_format: str,
    ) -> str:
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

    def _read(
        self,
        root: etree._Element,
        assertion: etree._Element,
        now: float,
        request_id: str | None,
        *,
        signed_response: bool,
    ) -> tuple[str, float, SSOIdentity]:
        self._check_response(root, now, request_id)
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
        self._check_issuer(assertion, required=True)
        self._check_not_future(assertion, now)
        name_id, confirmed_until = self._subject(assertion, now, request_id, answered)
        conditions_until = self._conditions(assertion, now)
        expires_at = min(
            t for t in (confirmed_until, conditions_until) if t is not None
        )
        session_index = ""
        session_expires_at = None
        for statement in assertion.iterchildren(_AUTHN_STATEMENT):
            session_index = statement.get("SessionIndex", "")
            session_expires_at = _optional_instant(
                statement,
                "SessionNotOnOrAfter",
                "the AuthnStatement's SessionNotOnOrAfter",
            )
            if (
                session_expires_at is not None
                and now - self.clock_skew >= session_expires_at
            ):
                msg = f"the login session expired at {statement.get('SessionNotOnOrAfter')}"
                raise SAMLExpiredError(msg)
            break
        subject = _clean(text_of(name_id))
        if not subject:
            msg = "the assertion's NameID is empty"
            raise SAMLStructureError(msg)
        name_id_format = name_id.get("Format", "")
        values, friendly = self._attributes(assertion)
        identity = SSOIdentity(
            subject=subject,
            tenant_id=self.tenant_id,
            email=self._email(values, friendly, subject, name_id_format),
            attributes=values,
            expires_at=expires_at,
            name_id_format=name_id_format,
            session_index=session_index,
            session_expires_at=session_expires_at,
            issuer=self.entity_id,
            assertion_id=assertion_id,
        )
        return assertion_id, expires_at + self.clock_skew, identity
