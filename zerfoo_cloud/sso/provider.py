"""
SAML 2.0 Web SSO, service-provider side: validating the IdP's Response.

`SAMLProvider` runs the checks in order; each concept lives in its own
module: the Response envelope (`_response_checks`), time windows
(`_time_window`), the subject confirmation (`_subject_confirmation`), the
conditions and audience (`_conditions`), the identity read from the
assertion (`_assertion_reader`, `_attributes`, `identity`) and the replay
check (`_replay`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.errors import InvalidConfigError, SAMLError
from zerfoo_cloud.sso._assertion_reader import read_assertion
from zerfoo_cloud.sso._attributes import EMAIL_ATTRIBUTES
from zerfoo_cloud.sso._encryption import Decryptor
from zerfoo_cloud.sso._expectations import Expectations
from zerfoo_cloud.sso._replay import record_assertion
from zerfoo_cloud.sso._response_checks import (
    RESPONSE,
    check_status,
    locate_assertion,
    own_signature,
)
from zerfoo_cloud.sso._signature import PinnedKeys, register_ids
from zerfoo_cloud.sso._xml import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_SIZE,
    check_depth,
    decode_message,
    parse_xml,
)
from zerfoo_cloud.sso.errors import (
    SAMLDecryptionError,
    SAMLParseError,
    SAMLSignatureError,
    SAMLStructureError,
)
from zerfoo_cloud.sso.identity import SSOIdentity
from zerfoo_cloud.sso.protocol import SSOProvider
from zerfoo_cloud.sso.roles import DEFAULT_GROUP_ATTRIBUTES, RoleMap, pick_groups
from zerfoo_cloud.sso.sp import AuthnRedirect, build_authn_redirect, build_sp_metadata
from zerfoo_cloud.stores.memory import MemoryReplayCache

with needs_extra("saml", "SAML single sign-on"):
    import xmlsec
    from lxml import etree

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.sso.metadata import SAMLMetadata
    from zerfoo_cloud.stores.protocols import ReplayCache

__all__ = [
    "EMAIL_ATTRIBUTES",
    "SAMLProvider",
    "SSOIdentity",
    "SSOProvider",
]


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
        group_attributes: the attribute Names (compared
            case-insensitively) whose values are the user's
            `SSOIdentity.groups`.
        role_map: which group gives which console role
            (`zerfoo_cloud.sso.RoleMap`); ``None`` gives every user this
            IdP vouches for the ``admin`` role of the tenant.

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
        group_attributes: Sequence[str] = DEFAULT_GROUP_ATTRIBUTES,
        role_map: RoleMap | None = None,
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
        self.group_attributes = tuple(group_attributes)
        self.role_map = role_map
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
        record_assertion(self._replay, self.entity_id, assertion, expires_at, now)
        return attrs.evolve(
            identity, groups=pick_groups(identity.attributes, self.group_attributes)
        )

    def _validate(
        self, root: etree._Element, now: float, request_id: str | None
    ) -> tuple[str, float, SSOIdentity]:
        if root.tag != RESPONSE:
            msg = f"not a SAML 2.0 Response: the root element is {root.tag!r}"
            raise SAMLStructureError(msg)
        if root.get("Version") != "2.0":
            msg = f"the Response has Version {root.get('Version')!r}, not '2.0'"
            raise SAMLStructureError(msg)
        check_status(root)
        register_ids(root)
        assertion, encrypted = locate_assertion(root)
        signed_response = self._verify_signature(root, root, now)
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
            locate_assertion(root)
        signed_assertion = self._verify_signature(root, assertion, now)
        if not (signed_response or signed_assertion):
            msg = "neither the Response nor the Assertion is signed"
            raise SAMLSignatureError(msg)
        return read_assertion(
            root,
            assertion,
            now,
            request_id,
            self._expectations(),
            tenant_id=self.tenant_id,
            signed_response=signed_response,
        )

    def _expectations(self) -> Expectations:
        return Expectations(
            idp_entity_id=self.entity_id,
            sp_entity_id=self.sp_entity_id,
            acs_url=self.acs_url,
            clock_skew=self.clock_skew,
        )

    def _verify_signature(
        self, root: etree._Element, element: etree._Element, now: float
    ) -> bool:
        """
        Verify the signature of *element* (the Response or the Assertion), if
        it has one; return whether it had one.
        """
        signature = own_signature(root, element)
        if signature is None:
            return False
        self._keys.verify(signature, element, now)
        return True
