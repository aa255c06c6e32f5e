"""
A small test IdP: keys and certificates made with `cryptography`, Responses
built with lxml and signed (or encrypted) with xmlsec, exactly as real IdPs
do (exclusive C14N, enveloped signature, reference by ID).
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from zerfoo_cloud.sso import SAMLMetadata

C = xmlsec.constants

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
EMAIL_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"

IDP_ENTITY = "https://idp.example.test/metadata"
SP_ENTITY = "https://sp.example.test/saml/metadata"
ACS_URL = "https://sp.example.test/saml/acs"
SSO_URL = "https://idp.example.test/sso"
REQUEST_ID = "_request-0001"
#: Every test response is issued at this Unix time.
NOW = 1_700_000_000.0


@attrs.frozen
class KeyPair:
    """
    An RSA key and a self-signed certificate for it.
    """

    key_pem: bytes = attrs.field(repr=False)
    cert_pem: str

    @property
    def cert_b64(self) -> str:
        """
        The certificate's DER in base64, as ``ds:X509Certificate`` holds it.
        """
        return "".join(self.cert_pem.strip().splitlines()[1:-1])


def make_keypair(
    name: str,
    *,
    bits: int = 2048,
    not_before: float = NOW - 86_400,
    not_after: float = NOW + 365 * 86_400,
) -> KeyPair:
    """
    Generate an RSA key and a self-signed certificate valid between the two times.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.fromtimestamp(not_before, tz=dt.timezone.utc))
        .not_valid_after(dt.datetime.fromtimestamp(not_after, tz=dt.timezone.utc))
        .sign(key, hashes.SHA256())
    )
    return KeyPair(
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
    )


def metadata_for(*keys: KeyPair, entity_id: str = IDP_ENTITY) -> SAMLMetadata:
    """
    Metadata trusting *keys* (the first is the primary certificate).
    """
    return SAMLMetadata(
        entity_id=entity_id,
        sign_on_url=SSO_URL,
        certificate=keys[0].cert_pem,
        signing_certificates=tuple(k.cert_pem for k in keys),
    )


def instant(when: float) -> str:
    """
    Format Unix seconds as a SAML xs:dateTime (milliseconds, UTC).
    """
    moment = dt.datetime.fromtimestamp(when, tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def q(ns: str, local: str) -> str:
    """
    Clark notation for a tag.
    """
    return f"{{{ns}}}{local}"


def build_response(  # noqa: C901, PLR0915 - one branch per option of a test IdP
    *,
    subject: str = "alice@example.com",
    name_id_format: str = EMAIL_FORMAT,
    issuer: str = IDP_ENTITY,
    assertion_issuer: str | None = None,
    audience: str | None = SP_ENTITY,
    recipient: str | None = ACS_URL,
    destination: str | None = ACS_URL,
    in_response_to: str | None = REQUEST_ID,
    issued_at: float = NOW,
    not_before: float | None = NOW - 60,
    not_on_or_after: float = NOW + 300,
    confirmation_not_on_or_after: float | None = None,
    status: str = SUCCESS,
    attributes: Mapping[str, Sequence[str]] | None = None,
    assertion_id: str | None = None,
    include_assertion: bool = True,
) -> etree._Element:
    """
    Build an unsigned Response with one bearer assertion.
    """
    nsmap = {"samlp": SAMLP, "saml": SAML}
    response = etree.Element(q(SAMLP, "Response"), nsmap=nsmap)
    response.set("ID", "_r" + uuid.uuid4().hex)
    response.set("Version", "2.0")
    response.set("IssueInstant", instant(issued_at))
    if destination is not None:
        response.set("Destination", destination)
    if in_response_to is not None:
        response.set("InResponseTo", in_response_to)
    etree.SubElement(response, q(SAML, "Issuer")).text = issuer
    status_element = etree.SubElement(response, q(SAMLP, "Status"))
    etree.SubElement(status_element, q(SAMLP, "StatusCode")).set("Value", status)
    if not include_assertion:
        return response
    assertion = etree.SubElement(response, q(SAML, "Assertion"))
    assertion.set("ID", assertion_id or "_a" + uuid.uuid4().hex)
    assertion.set("Version", "2.0")
    assertion.set("IssueInstant", instant(issued_at))
    etree.SubElement(assertion, q(SAML, "Issuer")).text = (
        issuer if assertion_issuer is None else assertion_issuer
    )
    subject_element = etree.SubElement(assertion, q(SAML, "Subject"))
    name_id = etree.SubElement(subject_element, q(SAML, "NameID"))
    name_id.text = subject
    if name_id_format:
        name_id.set("Format", name_id_format)
    confirmation = etree.SubElement(subject_element, q(SAML, "SubjectConfirmation"))
    confirmation.set("Method", "urn:oasis:names:tc:SAML:2.0:cm:bearer")
    data = etree.SubElement(confirmation, q(SAML, "SubjectConfirmationData"))
    data.set(
        "NotOnOrAfter",
        instant(
            not_on_or_after
            if confirmation_not_on_or_after is None
            else confirmation_not_on_or_after
        ),
    )
    if recipient is not None:
        data.set("Recipient", recipient)
    if in_response_to is not None:
        data.set("InResponseTo", in_response_to)
    conditions = etree.SubElement(assertion, q(SAML, "Conditions"))
    if not_before is not None:
        conditions.set("NotBefore", instant(not_before))
    conditions.set("NotOnOrAfter", instant(not_on_or_after))
    if audience is not None:
        restriction = etree.SubElement(conditions, q(SAML, "AudienceRestriction"))
        etree.SubElement(restriction, q(SAML, "Audience")).text = audience
    authn = etree.SubElement(assertion, q(SAML, "AuthnStatement"))
    authn.set("AuthnInstant", instant(issued_at))
    authn.set("SessionIndex", "_session-1")
    context = etree.SubElement(authn, q(SAML, "AuthnContext"))
    etree.SubElement(
        context, q(SAML, "AuthnContextClassRef")
    ).text = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
    if attributes is None:
        attributes = {"email": [subject], "groups": ["admins", "users"]}
    if attributes:
        statement = etree.SubElement(assertion, q(SAML, "AttributeStatement"))
        for name, values in attributes.items():
            attribute = etree.SubElement(statement, q(SAML, "Attribute"))
            attribute.set("Name", name)
            for value in values:
                etree.SubElement(attribute, q(SAML, "AttributeValue")).text = value
    return response


def assertion_of(response: etree._Element) -> etree._Element:
    """
    The Response's (first) Assertion.
    """
    found = response.find(q(SAML, "Assertion"))
    assert found is not None
    return found


def sign(
    element: etree._Element,
    keys: KeyPair,
    *,
    method: Any = C.TransformRsaSha256,
    digest: Any = C.TransformSha256,
    transform: Any = C.TransformExclC14N,
    include_cert: bool = True,
) -> etree._Element:
    """
    Sign *element* in place with an enveloped signature placed right after
    its Issuer (reference transforms: enveloped, then *transform*); return
    the ``ds:Signature``.
    """
    signature = xmlsec.template.create(element, C.TransformExclC14N, method, ns="ds")
    issuer = element.find(q(SAML, "Issuer"))
    assert issuer is not None
    issuer.addnext(signature)
    reference = xmlsec.template.add_reference(
        signature, digest, uri="#" + element.get("ID", "")
    )
    xmlsec.template.add_transform(reference, C.TransformEnveloped)
    xmlsec.template.add_transform(reference, transform)
    key = xmlsec.Key.from_memory(keys.key_pem, C.KeyDataFormatPem)
    if include_cert:
        key_info = xmlsec.template.ensure_key_info(signature)
        xmlsec.template.add_x509_data(key_info)
        key.load_cert_from_memory(keys.cert_pem.encode(), C.KeyDataFormatCertPem)
    xmlsec.tree.add_ids(element.getroottree().getroot(), ["ID"])
    ctx = xmlsec.SignatureContext()
    ctx.key = key
    ctx.sign(signature)
    return signature


def encrypt_assertion(
    response: etree._Element,
    recipient: KeyPair,
    *,
    method: Any = C.TransformAes256Cbc,
    key_transport: Any = C.TransformRsaOaep,
) -> etree._Element:
    """
    Replace the Response's Assertion by an EncryptedAssertion for *recipient*.
    """
    assertion = assertion_of(response)
    wrapper = etree.Element(q(SAML, "EncryptedAssertion"))
    assertion.addprevious(wrapper)
    wrapper.append(assertion)
    template = xmlsec.template.encrypted_data_create(
        response, method, type=C.TypeEncElement, ns="xenc"
    )
    xmlsec.template.encrypted_data_ensure_cipher_value(template)
    key_info = xmlsec.template.encrypted_data_ensure_key_info(template, ns="ds")
    encrypted_key = xmlsec.template.add_encrypted_key(key_info, key_transport)
    xmlsec.template.encrypted_data_ensure_cipher_value(encrypted_key)
    manager = xmlsec.KeysManager()
    manager.add_key(
        xmlsec.Key.from_memory(recipient.cert_pem.encode(), C.KeyDataFormatCertPem)
    )
    ctx = xmlsec.EncryptionContext(manager)
    bits = {
        C.TransformAes128Cbc: 128,
        C.TransformAes128Gcm: 128,
        C.TransformAes192Cbc: 192,
    }.get(method, 256)
    ctx.key = xmlsec.Key.generate(C.KeyDataAes, bits, C.KeyDataTypeSession)
    return ctx.encrypt_xml(template, assertion)


def to_bytes(element: etree._Element) -> bytes:
    """
    Serialize a document as an IdP would send it.
    """
    return etree.tostring(element.getroottree(), xml_declaration=True, encoding="UTF-8")


def copy_of(element: etree._Element) -> etree._Element:
    """
    A deep copy of *element*, detached from its tree.
    """
    return copy.deepcopy(element)
