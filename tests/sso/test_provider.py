"""
SAMLProvider against responses from the test IdP: what real IdPs send is
accepted, and every published attack on SAML service providers is not.
"""

from __future__ import annotations

import base64
import copy
import resource
from collections.abc import Callable
from typing import Any

import pytest
from lxml import etree

from tests.sso._idp import (
    ACS_URL,
    DS,
    IDP_ENTITY,
    NOW,
    REQUEST_ID,
    SAML,
    SAMLP,
    SP_ENTITY,
    C,
    KeyPair,
    assertion_of,
    build_response,
    encrypt_assertion,
    metadata_for,
    q,
    sign,
    to_bytes,
)
from zerfoo_cloud.errors import InvalidConfigError, SAMLError
from zerfoo_cloud.sso import (
    SAMLAlgorithmError,
    SAMLAudienceError,
    SAMLDecryptionError,
    SAMLDestinationError,
    SAMLExpiredError,
    SAMLInResponseToError,
    SAMLIssuerError,
    SAMLNotYetValidError,
    SAMLParseError,
    SAMLProvider,
    SAMLRecipientError,
    SAMLReplayError,
    SAMLSignatureError,
    SAMLStatusError,
    SAMLStructureError,
    SAMLSubjectConfirmationError,
    SAMLUnsafeXMLError,
    SSOIdentity,
    SSOProvider,
)
from zerfoo_cloud.sso._xml import DEFAULT_MAX_DEPTH
from zerfoo_cloud.stores.memory import MemoryReplayCache

Factory = Callable[..., SAMLProvider]


@pytest.fixture
def make_provider(idp_keys: KeyPair) -> Factory:
    """
    Build a provider trusting the test IdP, at the test time, with overrides.
    """

    def make(**options: Any) -> SAMLProvider:
        keys = options.pop("keys", (idp_keys,))
        now = options.pop("now", NOW + 1)
        settings: dict[str, Any] = {
            "sp_entity_id": SP_ENTITY,
            "acs_url": ACS_URL,
            "clock": lambda: now,
        }
        settings.update(options)
        return SAMLProvider(metadata_for(*keys), "tenant-1", **settings)

    return make


def signed(
    keys: KeyPair,
    *,
    response: bool = False,
    assertion: bool = True,
    **fields: Any,
) -> etree._Element:
    """
    A Response from the test IdP, its assertion and/or itself signed.
    """
    root = build_response(**fields)
    if assertion:
        sign(assertion_of(root), keys)
    if response:
        sign(root, keys)
    return root


def _validate(provider: SAMLProvider, root: etree._Element | bytes) -> SSOIdentity:
    data = root if isinstance(root, bytes) else to_bytes(root)
    return provider.validate_assertion(data, request_id=REQUEST_ID)


# -- what real IdPs send --------------------------------------------------


@pytest.mark.parametrize(
    ("response", "assertion"),
    [(False, True), (True, False), (True, True)],
    ids=["assertion-signed", "response-signed", "both-signed"],
)
def test_signed_response_is_accepted(
    make_provider: Factory, idp_keys: KeyPair, response: bool, assertion: bool
) -> None:
    """
    A signature on the Assertion, on the Response (covering it), or on both is accepted.
    """
    identity = _validate(
        make_provider(), signed(idp_keys, response=response, assertion=assertion)
    )
    assert identity.subject == "alice@example.com"
    assert identity.email == "alice@example.com"
    assert identity.tenant_id == "tenant-1"
    assert identity.attributes["groups"] == ("admins", "users")
    assert identity.expires_at == NOW + 300
    assert identity.session_index == "_session-1"
    assert isinstance(make_provider(), SSOProvider)


def test_response_signature_covers_the_assertion(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    Changing the unsigned assertion of a signed Response breaks the signature.
    """
    root = signed(idp_keys, response=True, assertion=False)
    name_id = assertion_of(root).find(f"{{{SAML}}}Subject/{{{SAML}}}NameID")
    assert name_id is not None
    name_id.text = "mallory@example.com"
    with pytest.raises(SAMLSignatureError, match="does not verify"):
        _validate(make_provider(), root)


def test_identity_is_read_only_and_multi_valued(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    Attributes keep every value, merge repeated names, and cannot be changed.
    """
    root = build_response(
        attributes={"memberOf": ["a", "b", "c"], "mail": ["m@example.com"]}
    )
    statement = assertion_of(root).find(q(SAML, "AttributeStatement"))
    assert statement is not None
    extra = etree.SubElement(statement, q(SAML, "Attribute"), Name="memberOf")
    etree.SubElement(extra, q(SAML, "AttributeValue")).text = "d"
    sign(assertion_of(root), idp_keys)
    identity = _validate(make_provider(), root)
    assert identity.attributes["memberOf"] == ("a", "b", "c", "d")
    assert identity.email == "m@example.com"
    with pytest.raises(TypeError):
        identity.attributes["memberOf"] = ("x",)  # type: ignore[index]
    assert hash(identity) == hash(identity)


def test_email_falls_back_to_an_email_name_id(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    Without an e-mail attribute the emailAddress NameID is the e-mail; an opaque one is not.
    """
    root = signed(idp_keys, attributes={})
    assert _validate(make_provider(), root).email == "alice@example.com"
    opaque = signed(
        idp_keys,
        subject="8f3a1c",
        name_id_format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        attributes={"uid": ["8f3a1c"]},
    )
    identity = _validate(make_provider(), opaque)
    assert identity.email == ""
    assert identity.subject == "8f3a1c"


def test_friendly_named_email_attribute_is_found(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    An e-mail attribute known only by its FriendlyName is found.
    """
    root = build_response(attributes={"urn:oid:1.2.3": ["bob@example.com"]})
    attribute = assertion_of(root).find(f".//{{{SAML}}}Attribute")
    assert attribute is not None
    attribute.set("FriendlyName", "mail")
    sign(assertion_of(root), idp_keys)
    assert _validate(make_provider(), root).email == "bob@example.com"


def test_base64_form_field_is_accepted(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    The SAMLResponse form field (base64 with line breaks) is accepted, as bytes or text.
    """
    data = base64.encodebytes(to_bytes(signed(idp_keys)))
    provider = make_provider()
    assert provider.validate_assertion(data, request_id=REQUEST_ID).subject
    text = base64.b64encode(to_bytes(signed(idp_keys))).decode("ascii")
    assert provider.validate_assertion(text, request_id=REQUEST_ID).subject


def test_key_rollover_trusts_every_signing_certificate(
    make_provider: Factory, idp_keys: KeyPair, attacker_keys: KeyPair
) -> None:
    """
    With two pinned certificates, a response signed by either one is accepted.
    """
    provider = make_provider(keys=(attacker_keys, idp_keys))
    assert _validate(provider, signed(idp_keys)).subject
    assert _validate(provider, signed(attacker_keys, response=True)).subject
    unhinted = build_response()
    sign(assertion_of(unhinted), idp_keys, include_cert=False)
    assert _validate(provider, unhinted).subject


def test_expired_certificate_is_accepted_unless_enforced(
    make_provider: Factory, expired_keys: KeyPair
) -> None:
    """
    Pinned keys ignore X.509 dates by default; enforce_cert_validity refuses an expired one.
    """
    assert _validate(make_provider(keys=(expired_keys,)), signed(expired_keys))
    strict = make_provider(keys=(expired_keys,), enforce_cert_validity=True)
    with pytest.raises(SAMLSignatureError, match="valid now"):
        _validate(strict, signed(expired_keys))


def test_unsolicited_response_needs_no_request_id(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    An IdP-initiated response is accepted without request_id, refused with one.
    """
    provider = make_provider()
    root = signed(idp_keys, in_response_to=None)
    assert provider.validate_assertion(to_bytes(root)).subject
    with pytest.raises(SAMLInResponseToError, match="unsolicited"):
        _validate(provider, signed(idp_keys, in_response_to=None))


def test_answer_to_another_request_is_refused(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    A Response whose InResponseTo names another request is refused.
    """
    with pytest.raises(SAMLInResponseToError, match="_other"):
        _validate(make_provider(), signed(idp_keys, in_response_to="_other"))


def test_checks_are_skipped_when_not_configured(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    Without sp_entity_id and acs_url, Audience, Destination and Recipient are not compared.
    """
    provider = make_provider(sp_entity_id=None, acs_url=None)
    root = signed(
        idp_keys, audience="urn:other", destination="https://x/", recipient="y"
    )
    assert _validate(provider, root).subject


# -- signature attacks ----------------------------------------------------


def test_stripped_signature_is_refused(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    A response whose signature was removed is refused.
    """
    root = signed(idp_keys)
    signature = assertion_of(root).find(q(DS, "Signature"))
    assert signature is not None
    assertion_of(root).remove(signature)
    with pytest.raises(SAMLSignatureError, match="neither"):
        _validate(make_provider(), root)


def test_signature_by_another_key_is_refused(
    make_provider: Factory, attacker_keys: KeyPair
) -> None:
    """
    A response signed by a key that is not pinned is refused.
    """
    root = build_response()
    sign(assertion_of(root), attacker_keys, include_cert=False)
    with pytest.raises(SAMLSignatureError, match="does not verify"):
        _validate(make_provider(), root)


def test_attacker_certificate_in_key_info_is_not_trusted(
    make_provider: Factory, attacker_keys: KeyPair
) -> None:
    """
    A signature that verifies with the certificate in its own KeyInfo is still refused.
    """
    root = signed(attacker_keys, response=True)
    cert = root.find(f".//{{{DS}}}X509Certificate")
    assert cert is not None
    assert "".join(cert.itertext()).replace("\n", "") == attacker_keys.cert_b64
    with pytest.raises(SAMLSignatureError, match="pinned"):
        _validate(make_provider(), root)


def test_comment_in_name_id_never_truncates_the_subject(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    A comment injected into a signed NameID (CVE-2017-11427) leaves the full subject.
    """
    root = signed(idp_keys, subject="alice@example.com.evil.test", attributes={})
    data = to_bytes(root).replace(
        b">alice@example.com.evil.test<",
        b">alice@example.com<!---->.evil.test<",
    )
    assert b"<!---->" in data
    identity = _validate(make_provider(), data)
    assert identity.subject == "alice@example.com.evil.test"
    assert identity.email == "alice@example.com.evil.test"


def test_sha1_is_refused_unless_allowed(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    RSA-SHA1 signatures and SHA-1 digests are refused by default, accepted when allowed.
    """
    for method, digest in [
        (C.TransformRsaSha1, C.TransformSha256),
        (C.TransformRsaSha256, C.TransformSha1),
    ]:
        root = build_response()
        sign(assertion_of(root), idp_keys, method=method, digest=digest)
        data = to_bytes(root)
        with pytest.raises(SAMLAlgorithmError, match="SHA-1") as caught:
            _validate(make_provider(), data)
        assert caught.value.algorithm.endswith("sha1")
        assert _validate(make_provider(allow_sha1=True), data).subject


def test_stronger_algorithms_are_accepted(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    RSA-SHA512 with a SHA-384 digest is accepted.
    """
    root = build_response()
    sign(
        assertion_of(root),
        idp_keys,
        method=C.TransformRsaSha512,
        digest=C.TransformSha384,
    )
    assert _validate(make_provider(), root).subject


def test_inclusive_c14n_transform_is_refused(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    A reference transform other than enveloped and exclusive C14N is refused.
    """
    root = build_response()
    sign(assertion_of(root), idp_keys, transform=C.TransformInclC14N)
    with pytest.raises(SAMLAlgorithmError, match="Transform"):
        _validate(make_provider(), root)


def test_reference_to_another_element_is_refused(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    A signature inside the Assertion that references the Response is refused.
    """
    root = signed(idp_keys)
    reference = root.find(f".//{{{DS}}}Reference")
    assert reference is not None
    reference.set("URI", "#" + root.get("ID", ""))
    with pytest.raises(SAMLSignatureError, match="does not point"):
        _validate(make_provider(), root)


def test_two_references_are_refused(make_provider: Factory, idp_keys: KeyPair) -> None:
    """
    A SignedInfo with a second Reference is refused.
    """
    root = signed(idp_keys)
    reference = root.find(f".//{{{DS}}}Reference")
    assert reference is not None
    reference.addnext(copy.deepcopy(reference))
    with pytest.raises(SAMLSignatureError, match="2 References"):
        _validate(make_provider(), root)


def test_object_in_signature_is_refused(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    A ds:Object inside the signature is refused before verification.
    """
    root = signed(idp_keys)
    signature = root.find(f".//{{{DS}}}Signature")
    assert signature is not None
    etree.SubElement(signature, q(DS, "Object")).text = "x"
    with pytest.raises(SAMLSignatureError, match="unexpected child"):
        _validate(make_provider(), root)


def test_signature_in_another_place_is_refused(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    A signature anywhere but on the Response or the Assertion is refused.
    """
    root = signed(idp_keys)
    status = root.find(q(SAMLP, "Status"))
    assert status is not None
    signature = root.find(f".//{{{DS}}}Signature")
    assert signature is not None
    status.append(copy.deepcopy(signature))
    with pytest.raises(SAMLSignatureError, match="no signature is accepted"):
        _validate(make_provider(), root)


def test_duplicate_ids_are_refused(make_provider: Factory, idp_keys: KeyPair) -> None:
    """
    An xml:id repeating the assertion's ID is refused.
    """
    root = signed(idp_keys)
    status = root.find(q(SAMLP, "Status"))
    assert status is not None
    status.set(
        "{http://www.w3.org/XML/1998/namespace}id", assertion_of(root).get("ID", "")
    )
    with pytest.raises(SAMLStructureError, match="more than one element"):
        _validate(make_provider(), root)


# -- XML signature wrapping (XSW1-8) ---------------------------------------

EVIL = "admin@evil.test"


def _evil(element: etree._Element, *, keep_signature: bool = False) -> etree._Element:
    """
    A copy of a signed element with another ID and the attacker's NameID.
    """
    clone = copy.deepcopy(element)
    clone.set("ID", "_evil" + element.get("ID", ""))
    for name_id in clone.iter(q(SAML, "NameID")):
        name_id.text = EVIL
    for value in clone.iter(q(SAML, "AttributeValue")):
        value.text = EVIL
    if not keep_signature:
        for signature in clone.findall(q(DS, "Signature")):
            clone.remove(signature)
    return clone


def _strip_signature(element: etree._Element) -> etree._Element:
    for signature in element.findall(q(DS, "Signature")):
        element.remove(signature)
    return element


def _xsw1(root: etree._Element) -> etree._Element:
    evil = _evil(root, keep_signature=True)
    evil.find(q(DS, "Signature")).append(root)  # type: ignore[union-attr]
    return evil


def _xsw2(root: etree._Element) -> etree._Element:
    evil = _evil(root, keep_signature=True)
    evil.find(q(DS, "Signature")).addprevious(root)  # type: ignore[union-attr]
    return evil


def _xsw3(root: etree._Element) -> etree._Element:
    assertion = assertion_of(root)
    assertion.addprevious(_evil(assertion))
    return root


def _xsw4(root: etree._Element) -> etree._Element:
    assertion = assertion_of(root)
    evil = _evil(assertion)
    assertion.addprevious(evil)
    evil.append(assertion)
    return root


def _xsw5(root: etree._Element) -> etree._Element:
    assertion = assertion_of(root)
    evil = _evil(assertion, keep_signature=True)
    assertion.addprevious(evil)
    root.append(_strip_signature(assertion))
    return root


def _xsw6(root: etree._Element) -> etree._Element:
    assertion = assertion_of(root)
    evil = _evil(assertion, keep_signature=True)
    assertion.addprevious(evil)
    evil.find(q(DS, "Signature")).append(_strip_signature(assertion))  # type: ignore[union-attr]
    return root


def _xsw7(root: etree._Element) -> etree._Element:
    assertion = assertion_of(root)
    extensions = etree.Element(q(SAMLP, "Extensions"))
    extensions.append(_evil(assertion))
    root.find(q(SAML, "Issuer")).addnext(extensions)  # type: ignore[union-attr]
    return root


def _xsw8(root: etree._Element) -> etree._Element:
    assertion = assertion_of(root)
    evil = _evil(assertion, keep_signature=True)
    assertion.addprevious(evil)
    signature = evil.find(q(DS, "Signature"))
    assert signature is not None
    holder = etree.SubElement(signature, q(DS, "Object"))
    holder.append(_strip_signature(assertion))
    return root


@pytest.mark.parametrize(
    ("wrap", "response_signed"),
    [
        (_xsw1, True),
        (_xsw2, True),
        (_xsw3, False),
        (_xsw4, False),
        (_xsw5, False),
        (_xsw6, False),
        (_xsw7, False),
        (_xsw8, False),
    ],
    ids=[f"XSW{i}" for i in range(1, 9)],
)
def test_signature_wrapping_is_refused(
    make_provider: Factory,
    idp_keys: KeyPair,
    wrap: Callable[[etree._Element], etree._Element],
    response_signed: bool,
) -> None:
    """
    Each of the eight wrapping layouts is refused, and the attacker's identity never appears.
    """
    original = signed(idp_keys, response=response_signed, assertion=not response_signed)
    data = to_bytes(wrap(original))
    assert EVIL.encode() in data
    with pytest.raises((SAMLStructureError, SAMLSignatureError)) as caught:
        _validate(make_provider(), data)
    assert EVIL not in str(caught.value)


# -- unsafe XML and limits ------------------------------------------------


def test_external_entity_is_refused(make_provider: Factory, tmp_path: Any) -> None:
    """
    A DOCTYPE declaring an external entity (XXE) is refused and the file never read.
    """
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xml = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
        f'<samlp:Response xmlns:samlp="{SAMLP}" ID="_r" Version="2.0">&x;'
        "</samlp:Response>"
    ).encode()
    with pytest.raises(SAMLUnsafeXMLError, match="DOCTYPE") as caught:
        _validate(make_provider(), xml)
    assert "TOP-SECRET" not in str(caught.value)


def _billion_laughs(levels: int = 12) -> str:
    entities = ['<!ENTITY l0 "lol">'] + [
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, levels)
    ]
    return (
        f"<!DOCTYPE r [{''.join(entities)}]>"
        f'<samlp:Response xmlns:samlp="{SAMLP}">&l{levels - 1};</samlp:Response>'
    )


def test_billion_laughs_is_refused_without_memory_growth(
    make_provider: Factory,
) -> None:
    """
    Entity expansion (10**12 bytes if expanded) is refused, in UTF-8 and UTF-16 alike.
    """
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    provider = make_provider()
    with pytest.raises(SAMLUnsafeXMLError):
        _validate(provider, _billion_laughs().encode())
    utf16 = ('<?xml version="1.0" encoding="UTF-16"?>' + _billion_laughs()).encode(
        "utf-16"
    )
    with pytest.raises(SAMLParseError):
        _validate(provider, utf16)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 64 * 1024


def test_doctype_in_an_ascii_compatible_prolog_is_refused() -> None:
    """
    A DOCTYPE after comments and processing instructions is still found before parsing.
    """
    from zerfoo_cloud.sso._xml import parse_xml

    with pytest.raises(SAMLUnsafeXMLError):
        parse_xml(
            b"\xef\xbb\xbf<?xml version='1.0'?>\n<!-- c --><?pi x?><!DOCTYPE a><a/>"
        )


def test_size_limit_is_exact(make_provider: Factory, idp_keys: KeyPair) -> None:
    """
    A response of exactly max_size bytes is read; one byte more is refused.
    """
    data = to_bytes(signed(idp_keys))
    at_limit = make_provider(max_size=len(data))
    assert _validate(at_limit, data).subject
    below = make_provider(max_size=len(data) - 1)
    with pytest.raises(SAMLParseError, match="larger than the limit"):
        _validate(below, to_bytes(signed(idp_keys)))
    with pytest.raises(SAMLParseError, match="larger than the limit"):
        _validate(below, b" " * (len(data) * 2))


def test_depth_limit_is_exact() -> None:
    """
    Elements nested exactly max_depth deep are read; one level more is refused.
    """
    from zerfoo_cloud.sso._xml import parse_xml

    def nested(depth: int) -> bytes:
        return b"<a>" * depth + b"</a>" * depth

    assert parse_xml(nested(DEFAULT_MAX_DEPTH)) is not None
    with pytest.raises(SAMLParseError, match="deeper"):
        parse_xml(nested(DEFAULT_MAX_DEPTH + 1))
    with pytest.raises(SAMLParseError, match="depth"):
        parse_xml(nested(1000))
    with pytest.raises(SAMLParseError, match="larger than the limit of 9"):
        parse_xml(b"<a>12345</a>", max_size=9)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"   ", "empty"),
        (b"not base64 at all!", "neither XML nor valid base64"),
        (base64.b64encode(b"plain text"), "not XML"),
        (b"<a><b></a>", "not well-formed"),
        (b"<saml:Assertion xmlns:saml='urn:x'/>", "not a SAML 2.0 Response"),
        ("\ud800".encode("utf-8", "surrogatepass"), "neither XML"),
    ],
)
def test_garbage_is_a_parse_error(
    make_provider: Factory, data: bytes, message: str
) -> None:
    """
    Empty, non-base64, non-XML and non-SAML input each get a clear error.
    """
    with pytest.raises(SAMLError, match=message):
        _validate(make_provider(), data)


def test_text_that_is_not_utf8_is_refused(make_provider: Factory) -> None:
    """
    A str input that cannot be encoded is refused as a parse error.
    """
    with pytest.raises(SAMLParseError, match="not valid text"):
        make_provider().validate_assertion("\ud800")


# -- the SAML checks --------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"audience": "https://other.example/metadata"}, SAMLAudienceError, "audience"),
        ({"audience": None}, SAMLAudienceError, "no AudienceRestriction"),
        ({"recipient": "https://evil.example/acs"}, SAMLRecipientError, "Recipient"),
        ({"recipient": None}, SAMLRecipientError, "no Recipient"),
        (
            {"destination": "https://evil.example/acs"},
            SAMLDestinationError,
            "Destination",
        ),
        ({"issuer": "https://evil.example/idp"}, SAMLIssuerError, "issued by"),
        (
            {"assertion_issuer": "https://evil.example/idp"},
            SAMLIssuerError,
            "Assertion",
        ),
        ({"issued_at": NOW + 1000}, SAMLNotYetValidError, "future"),
    ],
    ids=[
        "wrong-audience",
        "no-audience",
        "wrong-recipient",
        "no-recipient",
        "wrong-destination",
        "wrong-issuer",
        "wrong-assertion-issuer",
        "issued-in-future",
    ],
)
def test_saml_check_refuses(
    make_provider: Factory,
    idp_keys: KeyPair,
    fields: dict[str, Any],
    error: type[SAMLError],
    message: str,
) -> None:
    """
    Each SAML check refuses a correctly signed response with its own error.
    """
    with pytest.raises(error, match=message):
        _validate(make_provider(), signed(idp_keys, response=True, **fields))


def test_failed_status_is_refused(make_provider: Factory, idp_keys: KeyPair) -> None:
    """
    A Response with a status other than Success is refused with the status in the error.
    """
    root = build_response(
        status="urn:oasis:names:tc:SAML:2.0:status:Responder", include_assertion=False
    )
    status = root.find(q(SAMLP, "Status"))
    assert status is not None
    code = status[0]
    etree.SubElement(code, q(SAMLP, "StatusCode")).set(
        "Value", "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"
    )
    etree.SubElement(status, q(SAMLP, "StatusMessage")).text = "bad password"
    sign(root, idp_keys)
    with pytest.raises(SAMLStatusError, match="bad password") as caught:
        _validate(make_provider(), root)
    assert caught.value.status_code.endswith("Responder")
    assert caught.value.sub_status_code.endswith("AuthnFailed")


def test_missing_pieces_are_structure_errors(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    No Status, no assertion, or a wrong Version each give a structure error.
    """
    no_status = build_response()
    no_status.remove(no_status.find(q(SAMLP, "Status")))  # type: ignore[arg-type]
    with pytest.raises(SAMLStructureError, match="no Status"):
        _validate(make_provider(), no_status)
    no_assertion = build_response(include_assertion=False)
    sign(no_assertion, idp_keys)
    with pytest.raises(SAMLStructureError, match="0 assertions"):
        _validate(make_provider(), no_assertion)
    old = build_response()
    old.set("Version", "1.1")
    with pytest.raises(SAMLStructureError, match="Version"):
        _validate(make_provider(), old)


@pytest.mark.parametrize(
    ("mutate", "error", "message"),
    [
        (lambda a: a.set("Version", "1.0"), SAMLStructureError, "Version"),
        (
            lambda a: (
                a.find(q(SAML, "Issuer")).getparent().remove(a.find(q(SAML, "Issuer")))
            ),
            SAMLIssuerError,
            "no Issuer",
        ),
        (lambda a: a.remove(a.find(q(SAML, "Subject"))), SAMLStructureError, "NameID"),
        (
            lambda a: a.remove(a.find(q(SAML, "Conditions"))),
            SAMLAudienceError,
            "no Conditions",
        ),
        (
            lambda a: a.find(f"{{{SAML}}}Subject/{{{SAML}}}SubjectConfirmation").set(
                "Method", "urn:x"
            ),
            SAMLSubjectConfirmationError,
            "no bearer",
        ),
        (
            lambda a: a.find(f".//{{{SAML}}}SubjectConfirmation").remove(
                a.find(f".//{{{SAML}}}SubjectConfirmationData")
            ),
            SAMLSubjectConfirmationError,
            "no SubjectConfirmationData",
        ),
        (
            lambda a: a.find(f".//{{{SAML}}}SubjectConfirmationData").attrib.pop(
                "NotOnOrAfter"
            ),
            SAMLSubjectConfirmationError,
            "no NotOnOrAfter",
        ),
        (
            lambda a: a.find(f".//{{{SAML}}}Conditions").set("NotBefore", "yesterday"),
            SAMLStructureError,
            "xs:dateTime",
        ),
        (
            lambda a: a.find(f".//{{{SAML}}}Conditions").set(
                "NotBefore", "2023-02-30T00:00:00Z"
            ),
            SAMLStructureError,
            "valid date",
        ),
        (
            lambda a: etree.SubElement(
                a.find(f".//{{{SAML}}}Conditions"), q(SAML, "Condition")
            ),
            SAMLStructureError,
            "does not know",
        ),
        (
            lambda a: a.find(f".//{{{SAML}}}AuthnStatement").set(
                "SessionNotOnOrAfter", "2023-11-14T22:00:00Z"
            ),
            SAMLExpiredError,
            "session",
        ),
        (
            lambda a: setattr(a.find(f".//{{{SAML}}}NameID"), "text", "  "),
            SAMLStructureError,
            "empty",
        ),
    ],
    ids=[
        "assertion-version",
        "no-assertion-issuer",
        "no-subject",
        "no-conditions",
        "no-bearer",
        "no-confirmation-data",
        "no-confirmation-expiry",
        "bad-datetime",
        "impossible-date",
        "unknown-condition",
        "session-expired",
        "empty-name-id",
    ],
)
def test_assertion_defect_is_refused(
    make_provider: Factory,
    idp_keys: KeyPair,
    mutate: Callable[[etree._Element], object],
    error: type[SAMLError],
    message: str,
) -> None:
    """
    A signed assertion missing a required piece is refused with a clear error.
    """
    root = build_response()
    mutate(assertion_of(root))
    sign(root, idp_keys)
    with pytest.raises(error, match=message):
        _validate(make_provider(), root)


def test_assertion_without_id_is_refused(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    An assertion without an ID (so no replay key) is refused.
    """
    root = build_response()
    del assertion_of(root).attrib["ID"]
    sign(root, idp_keys)
    with pytest.raises(SAMLStructureError, match="no ID"):
        _validate(make_provider(), root)


def test_second_bearer_confirmation_may_match(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    Of two bearer confirmations, one for this SP is enough.
    """
    root = build_response()
    confirmation = assertion_of(root).find(f".//{{{SAML}}}SubjectConfirmation")
    assert confirmation is not None
    other = copy.deepcopy(confirmation)
    other[0].set("Recipient", "https://other.example/acs")
    confirmation.addprevious(other)
    sign(root, idp_keys)
    assert _validate(make_provider(), root).subject


# -- the validity window and its clock skew ---------------------------------


@pytest.mark.parametrize("skew", [0, 300])
def test_expiry_is_exact(make_provider: Factory, idp_keys: KeyPair, skew: int) -> None:
    """
    Accepted up to just before NotOnOrAfter + skew; expired at it.
    """
    end = NOW + 300 + skew
    assert _validate(make_provider(now=end - 0.001, clock_skew=skew), signed(idp_keys))
    with pytest.raises(SAMLExpiredError, match="expired"):
        _validate(make_provider(now=end, clock_skew=skew), signed(idp_keys))


@pytest.mark.parametrize("skew", [0, 300])
def test_not_before_is_exact(
    make_provider: Factory, idp_keys: KeyPair, skew: int
) -> None:
    """
    Accepted from NotBefore - skew on; not yet valid just before it.
    """
    start = NOW - 60 - skew
    early = NOW - 60 - 2 * skew - 1
    assert _validate(
        make_provider(now=start, clock_skew=skew), signed(idp_keys, issued_at=early)
    )
    with pytest.raises(SAMLNotYetValidError, match="not valid before"):
        _validate(
            make_provider(now=start - 0.001, clock_skew=skew),
            signed(idp_keys, issued_at=early),
        )


def test_confirmation_expiry_is_checked_on_its_own(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    An expired bearer SubjectConfirmationData is refused while Conditions still hold.
    """
    root = signed(idp_keys, confirmation_not_on_or_after=NOW - 301)
    with pytest.raises(SAMLExpiredError, match="SubjectConfirmationData"):
        _validate(make_provider(), root)


def test_times_with_offsets_are_understood(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    xs:dateTime with a +01:00 offset or no fraction is read as the same instant.
    """
    root = build_response()
    conditions = assertion_of(root).find(q(SAML, "Conditions"))
    assert conditions is not None
    conditions.set("NotOnOrAfter", "2023-11-14T23:18:20+01:00")  # NOW + 300
    sign(assertion_of(root), idp_keys)
    identity = _validate(make_provider(clock_skew=0), root)
    assert identity.expires_at == NOW + 300


@pytest.mark.parametrize(
    ("option", "value"),
    [("clock_skew", -1), ("clock_skew", 3601), ("max_size", 1023)],
)
def test_bad_settings_are_refused(
    make_provider: Factory, option: str, value: int
) -> None:
    """
    Out-of-range settings raise InvalidConfigError naming the setting.
    """
    with pytest.raises(InvalidConfigError) as caught:
        make_provider(**{option: value})
    assert caught.value.field == option


def test_limits_of_settings_are_accepted(make_provider: Factory) -> None:
    """
    The extreme allowed values of the settings are accepted.
    """
    assert make_provider(clock_skew=0, max_size=1024)
    assert make_provider(clock_skew=3600)


# -- replay -----------------------------------------------------------------


def test_replay_is_caught_in_one_process(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    The same assertion is accepted once; the second time is a replay.
    """
    provider = make_provider()
    data = to_bytes(signed(idp_keys))
    assert _validate(provider, data).subject
    with pytest.raises(SAMLReplayError, match="already used"):
        _validate(provider, data)


def test_rejected_assertion_does_not_use_up_its_id(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    An assertion refused by a check is not recorded, so its id is not burnt.
    """
    cache = MemoryReplayCache()
    root = signed(idp_keys, assertion_id="_fixed")
    with pytest.raises(SAMLAudienceError):
        _validate(make_provider(replay_cache=cache, sp_entity_id="urn:other"), root)
    assert len(cache) == 0
    assert _validate(make_provider(replay_cache=cache), root).assertion_id == "_fixed"
    assert len(cache) == 1


def test_replay_entry_lasts_until_the_assertion_expires(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    The replay cache keeps the id exactly until the assertion could no longer be accepted.
    """
    cache = MemoryReplayCache()
    _validate(make_provider(replay_cache=cache), signed(idp_keys))
    (expires_at,) = cache.all().values()
    assert expires_at == NOW + 300 + 300


# -- encrypted assertions -------------------------------------------------


@pytest.mark.parametrize(
    "method",
    [C.TransformAes256Cbc, C.TransformAes128Gcm, C.TransformAes256Gcm],
    ids=["aes256-cbc", "aes128-gcm", "aes256-gcm"],
)
def test_encrypted_assertion_is_decrypted(
    make_provider: Factory, idp_keys: KeyPair, sp_keys: KeyPair, method: Any
) -> None:
    """
    An EncryptedAssertion holding a signed assertion is decrypted with the SP key.
    """
    root = signed(idp_keys)
    encrypt_assertion(root, sp_keys, method=method)
    assert b"alice" not in to_bytes(root)
    identity = _validate(make_provider(sp_private_key=sp_keys.key_pem), root)
    assert identity.subject == "alice@example.com"


def test_encrypted_assertion_under_a_signed_response(
    make_provider: Factory, idp_keys: KeyPair, sp_keys: KeyPair
) -> None:
    """
    A Response signed over an encrypted, unsigned assertion is accepted (Azure AD's way).
    """
    root = build_response()
    encrypt_assertion(root, sp_keys)
    sign(root, idp_keys)
    provider = make_provider(sp_private_key=sp_keys.key_pem.decode())
    assert _validate(provider, root).subject == "alice@example.com"


def test_encrypted_unsigned_assertion_is_refused(
    make_provider: Factory, sp_keys: KeyPair
) -> None:
    """
    Anyone can encrypt to the SP: an encrypted assertion still needs a signature.
    """
    root = build_response()
    encrypt_assertion(root, sp_keys)
    with pytest.raises(SAMLSignatureError, match="neither"):
        _validate(make_provider(sp_private_key=sp_keys.key_pem), root)


def test_encrypted_assertion_needs_the_key(
    make_provider: Factory,
    idp_keys: KeyPair,
    sp_keys: KeyPair,
    attacker_keys: KeyPair,
) -> None:
    """
    Without the SP key, or with another key, decryption fails with one uniform message.
    """
    root = signed(idp_keys)
    encrypt_assertion(root, sp_keys)
    data = to_bytes(root)
    with pytest.raises(SAMLDecryptionError, match="no sp_private_key"):
        _validate(make_provider(), data)
    with pytest.raises(SAMLDecryptionError, match="cannot be decrypted"):
        _validate(make_provider(sp_private_key=attacker_keys.key_pem), data)


def test_tampered_ciphertext_is_refused(
    make_provider: Factory, idp_keys: KeyPair, sp_keys: KeyPair
) -> None:
    """
    A flipped byte in the encrypted assertion is refused, never accepted.
    """
    root = signed(idp_keys)
    encrypt_assertion(root, sp_keys, method=C.TransformAes256Cbc)
    values = list(root.iter(f"{{{'http://www.w3.org/2001/04/xmlenc#'}}}CipherValue"))
    raw = bytearray(base64.b64decode("".join(values[-1].itertext())))
    raw[len(raw) // 2] ^= 0x01
    values[-1].text = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(SAMLError):
        _validate(make_provider(sp_private_key=sp_keys.key_pem), root)


def test_rsa_v15_key_transport_is_refused(
    make_provider: Factory, idp_keys: KeyPair, sp_keys: KeyPair
) -> None:
    """
    RSA PKCS#1 v1.5 key transport (Bleichenbacher's oracle) is refused.
    """
    root = signed(idp_keys)
    encrypt_assertion(root, sp_keys, key_transport=C.TransformRsaPkcs1)
    with pytest.raises(SAMLDecryptionError):
        _validate(make_provider(sp_private_key=sp_keys.key_pem), root)


def test_encrypted_and_plain_assertion_together_are_refused(
    make_provider: Factory, idp_keys: KeyPair, sp_keys: KeyPair
) -> None:
    """
    A Response with both an EncryptedAssertion and an Assertion is refused.
    """
    root = signed(idp_keys)
    plain = copy.deepcopy(assertion_of(root))
    encrypt_assertion(root, sp_keys)
    root.append(plain)
    with pytest.raises(SAMLStructureError, match="2 assertions"):
        _validate(make_provider(sp_private_key=sp_keys.key_pem), root)


def test_unreadable_sp_key_is_refused(make_provider: Factory) -> None:
    """
    An SP private key that is not PEM is refused when the provider is built.
    """
    with pytest.raises(SAMLDecryptionError, match="cannot be read"):
        make_provider(sp_private_key=b"not a key")


def test_provider_repr_hides_the_private_key(
    make_provider: Factory, sp_keys: KeyPair
) -> None:
    """
    The provider's repr names the IdP and tenant, never the SP key.
    """
    provider = make_provider(sp_private_key=sp_keys.key_pem)
    text = repr(provider)
    assert IDP_ENTITY in text
    assert "PRIVATE" not in text
    assert provider.entity_id == IDP_ENTITY
    assert provider.allow_sha1 is False


@pytest.mark.slow
def test_replay_is_caught_by_a_second_process_sharing_lmdb(
    tmp_path: Any, idp_keys: KeyPair
) -> None:
    """
    An assertion accepted in one worker process is a replay in another on the same LMDB folder.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tests.sso._workers import validate_with_lmdb

    args: dict[str, Any] = {
        "path": str(tmp_path / "db"),
        "data": to_bytes(signed(idp_keys)),
        "metadata": metadata_for(idp_keys),
        "settings": {"sp_entity_id": SP_ENTITY, "acs_url": ACS_URL},
        "now": NOW + 1,
        "request_id": REQUEST_ID,
    }
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as first:
        assert first.submit(validate_with_lmdb, **args).result(timeout=120) == (
            "alice@example.com"
        )
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as second:
        assert second.submit(validate_with_lmdb, **args).result(timeout=120) == (
            "SAMLReplayError"
        )
    # And this (third) process, sharing the same folder, sees it too.
    assert validate_with_lmdb(**args) == "SAMLReplayError"


def test_second_response_inside_the_first_is_refused(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    A Response smuggled inside another (with fresh IDs) is refused.
    """
    root = signed(idp_keys, response=True)
    inner = build_response(include_assertion=False)
    extensions = etree.SubElement(root, q(SAMLP, "Extensions"))
    extensions.append(inner)
    with pytest.raises(SAMLStructureError, match="2 Responses"):
        _validate(make_provider(), root)


def test_encrypted_assertion_hiding_another_is_refused(
    make_provider: Factory, idp_keys: KeyPair, sp_keys: KeyPair
) -> None:
    """
    An assertion found inside the decrypted plaintext counts like any other.
    """
    root = build_response()
    assertion = assertion_of(root)
    advice = etree.SubElement(assertion, q(SAML, "Advice"))
    hidden = copy.deepcopy(assertion)
    hidden.remove(hidden.find(q(SAML, "Advice")))  # type: ignore[arg-type]
    hidden.set("ID", "_hidden")
    advice.append(hidden)
    encrypt_assertion(root, sp_keys)
    sign(root, idp_keys)
    with pytest.raises(SAMLStructureError, match="2 assertions"):
        _validate(make_provider(sp_private_key=sp_keys.key_pem), root)


def test_unreadable_key_info_hint_is_ignored(
    make_provider: Factory, idp_keys: KeyPair, attacker_keys: KeyPair
) -> None:
    """
    A KeyInfo certificate that is not base64 is no hint; the pinned keys are still tried.
    """
    root = signed(idp_keys)
    cert = root.find(f".//{{{DS}}}X509Certificate")
    assert cert is not None
    cert.text = "%%% not base64 %%%"
    assert _validate(make_provider(keys=(attacker_keys, idp_keys)), root).subject


def test_identity_takes_single_strings_as_one_value() -> None:
    """
    SSOIdentity stores an attribute given as one string as a one-value tuple.
    """
    identity = SSOIdentity("s", "t", "", {"a": "x", "b": ["y", "z"]}, 0.0)
    assert identity.attributes == {"a": ("x",), "b": ("y", "z")}


def test_decryptor_repr_hides_the_key(sp_keys: KeyPair) -> None:
    """
    The decryptor's repr never shows the private key.
    """
    from zerfoo_cloud.sso._encryption import Decryptor

    assert "PRIVATE" not in repr(Decryptor(sp_keys.key_pem))


def test_unsigned_in_response_to_cannot_answer_a_request(
    make_provider: Factory, idp_keys: KeyPair
) -> None:
    """
    An unsolicited signed assertion in an unsigned Response claiming InResponseTo is refused.
    """
    root = signed(idp_keys, in_response_to=None)
    root.set("InResponseTo", REQUEST_ID)
    with pytest.raises(SAMLInResponseToError, match="unsolicited"):
        _validate(make_provider(), root)
    covered = build_response(in_response_to=None)
    covered.set("InResponseTo", REQUEST_ID)
    sign(covered, idp_keys)
    assert _validate(make_provider(), covered).subject


def test_one_provider_serves_many_threads(
    make_provider: Factory, idp_keys: KeyPair, sp_keys: KeyPair
) -> None:
    """
    Four threads validating different responses on one provider all succeed, each once.
    """
    from concurrent.futures import ThreadPoolExecutor

    provider = make_provider(sp_private_key=sp_keys.key_pem)
    documents = []
    for i in range(24):
        root = signed(idp_keys, subject=f"user{i}@example.com")
        if i % 3 == 0:
            encrypt_assertion(root, sp_keys)
        documents.append(to_bytes(root))
    with ThreadPoolExecutor(4) as pool:
        subjects = list(pool.map(lambda d: _validate(provider, d).subject, documents))
    assert subjects == [f"user{i}@example.com" for i in range(24)]
    with ThreadPoolExecutor(4) as pool:
        again = list(pool.map(lambda d: _outcome_name(provider, d), documents))
    assert again == ["SAMLReplayError"] * 24


def _outcome_name(provider: SAMLProvider, data: bytes) -> str:
    try:
        return _validate(provider, data).subject
    except SAMLError as exc:
        return type(exc).__name__
