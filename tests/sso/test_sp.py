"""
The SP's own messages: AuthnRequests for the HTTP-Redirect binding and SP metadata.
"""

from __future__ import annotations

import base64
import urllib.parse
import zlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from lxml import etree

from tests.sso._idp import (
    ACS_URL,
    IDP_ENTITY,
    NOW,
    SAML,
    SAMLP,
    SP_ENTITY,
    SSO_URL,
    KeyPair,
    metadata_for,
    q,
)
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.sso import (
    SAMLMetadata,
    SAMLProvider,
    build_authn_redirect,
    parse_saml_metadata,
)
from zerfoo_cloud.sso.sp import MAX_RELAY_STATE, SIG_ALG_RSA_SHA256

MD = "urn:oasis:names:tc:SAML:2.0:metadata"


def _provider(idp_keys: KeyPair, **options: object) -> SAMLProvider:
    settings: dict[str, object] = {
        "sp_entity_id": SP_ENTITY,
        "acs_url": ACS_URL,
        "clock": lambda: NOW,
    }
    settings.update(options)
    return SAMLProvider(metadata_for(idp_keys), "tenant-1", **settings)  # type: ignore[arg-type]


def _query(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def _inflate(value: str) -> etree._Element:
    return etree.fromstring(zlib.decompress(base64.b64decode(value), -15))


def test_authn_request_is_deflated_and_encoded(idp_keys: KeyPair) -> None:
    """
    The redirect URL carries the deflated, base64 AuthnRequest with its fields and RelayState.
    """
    redirect = _provider(idp_keys).authn_request(relay_state="/after login?x=1")
    assert redirect.url.startswith(SSO_URL + "?SAMLRequest=")
    params = _query(redirect.url)
    assert params["RelayState"] == "/after login?x=1"
    assert "Signature" not in params
    request = _inflate(params["SAMLRequest"])
    assert request.tag == q(SAMLP, "AuthnRequest")
    assert request.get("ID") == redirect.id
    assert redirect.id.startswith("_")
    assert request.get("Destination") == SSO_URL
    assert request.get("AssertionConsumerServiceURL") == ACS_URL
    assert request.get("IssueInstant") == "2023-11-14T22:13:20Z"
    assert request.findtext(q(SAML, "Issuer")) == SP_ENTITY
    assert etree.tostring(request) == etree.tostring(etree.fromstring(redirect.xml))
    assert redirect.signed is False


def test_request_options_and_ids_are_fresh(idp_keys: KeyPair) -> None:
    """
    ForceAuthn, IsPassive and a NameID format are set; every request has a new id.
    """
    provider = _provider(idp_keys)
    first = provider.authn_request(
        force_authn=True, is_passive=True, name_id_format="urn:f"
    )
    request = _inflate(_query(first.url)["SAMLRequest"])
    assert request.get("ForceAuthn") == "true"
    assert request.get("IsPassive") == "true"
    policy = request.find(q(SAMLP, "NameIDPolicy"))
    assert policy is not None
    assert policy.get("Format") == "urn:f"
    assert provider.authn_request().id != first.id


def test_signed_redirect_verifies_with_the_sp_certificate(
    idp_keys: KeyPair, sp_keys: KeyPair
) -> None:
    """
    A signed redirect's Signature covers SAMLRequest, RelayState and SigAlg in order.
    """
    provider = _provider(
        idp_keys, sp_private_key=sp_keys.key_pem, sign_authn_requests=True
    )
    redirect = provider.authn_request(relay_state="state")
    assert redirect.signed
    raw_query = urllib.parse.urlsplit(redirect.url).query
    signed_part, _, signature_part = raw_query.rpartition("&Signature=")
    assert signed_part.split("&")[1] == "RelayState=state"
    assert _query(redirect.url)["SigAlg"] == SIG_ALG_RSA_SHA256
    public = x509.load_pem_x509_certificate(sp_keys.cert_pem.encode()).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(
        base64.b64decode(urllib.parse.unquote_plus(signature_part)),
        signed_part.encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )


def test_idp_wanting_signed_requests_needs_a_key(idp_keys: KeyPair) -> None:
    """
    When the IdP metadata wants signed AuthnRequests, a provider without a key cannot build one.
    """
    metadata = SAMLMetadata(
        entity_id=IDP_ENTITY,
        sign_on_url=SSO_URL,
        certificate=idp_keys.cert_pem,
        want_authn_signed=True,
    )
    provider = SAMLProvider(metadata, "t", sp_entity_id=SP_ENTITY, acs_url=ACS_URL)
    with pytest.raises(InvalidConfigError, match="signed AuthnRequests"):
        provider.authn_request()


def test_relay_state_limit_is_exact(idp_keys: KeyPair) -> None:
    """
    A RelayState of 80 bytes is sent; 81 bytes are refused.
    """
    provider = _provider(idp_keys)
    at_limit = "r" * MAX_RELAY_STATE
    assert (
        _query(provider.authn_request(relay_state=at_limit).url)["RelayState"]
        == at_limit
    )
    with pytest.raises(InvalidConfigError, match="80 bytes"):
        provider.authn_request(relay_state=at_limit + "r")


def test_sign_on_url_with_a_query_keeps_it() -> None:
    """
    An IdP sign-on URL that already has a query string gets the parameters appended.
    """
    redirect = build_authn_redirect(
        sso_url="https://idp/sso?tenant=7", sp_entity_id="sp", acs_url="https://acs"
    )
    assert redirect.url.startswith("https://idp/sso?tenant=7&SAMLRequest=")


def test_unusable_signing_keys_are_refused(idp_keys: KeyPair) -> None:
    """
    A key that is not PEM, or not RSA, cannot sign AuthnRequests.
    """
    with pytest.raises(InvalidConfigError, match="cannot be read"):
        build_authn_redirect(
            sso_url="https://i", sp_entity_id="sp", acs_url="https://a", sign_key=b"x"
        )
    ec_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    with pytest.raises(InvalidConfigError, match="must be RSA"):
        build_authn_redirect(
            sso_url="https://i", sp_entity_id="sp", acs_url="https://a", sign_key=ec_key
        )


def test_sp_side_needs_entity_id_and_acs_url(idp_keys: KeyPair) -> None:
    """
    AuthnRequests and SP metadata need the SP's entity id and ACS URL.
    """
    provider = SAMLProvider(metadata_for(idp_keys), "t")
    with pytest.raises(InvalidConfigError):
        provider.authn_request()
    with pytest.raises(InvalidConfigError):
        provider.sp_metadata()


def test_sp_metadata_describes_the_sp(idp_keys: KeyPair, sp_keys: KeyPair) -> None:
    """
    SP metadata names the entity, the POST ACS, and the certificate for signing and encryption.
    """
    provider = _provider(
        idp_keys,
        sp_private_key=sp_keys.key_pem,
        sp_certificate=sp_keys.cert_pem,
        sign_authn_requests=True,
    )
    root = etree.fromstring(provider.sp_metadata(valid_for=86_400))
    assert root.get("entityID") == SP_ENTITY
    assert root.get("validUntil") == "2023-11-15T22:13:20Z"
    sp = root.find(q(MD, "SPSSODescriptor"))
    assert sp is not None
    assert sp.get("AuthnRequestsSigned") == "true"
    acs = sp.find(q(MD, "AssertionConsumerService"))
    assert acs is not None
    assert acs.get("Location") == ACS_URL
    uses = [k.get("use") for k in sp.iter(q(MD, "KeyDescriptor"))]
    assert uses == ["signing", "encryption"]
    certs = {"".join(c.itertext()) for c in root.iter("{*}X509Certificate")}
    assert certs == {sp_keys.cert_b64}
    plain = etree.fromstring(_provider(idp_keys).sp_metadata())
    assert plain.get("validUntil") is None
    assert next(plain.iter(q(MD, "KeyDescriptor")), None) is None


def test_provider_needs_an_entity_id_and_a_certificate(idp_keys: KeyPair) -> None:
    """
    Metadata without an entity id or without any certificate cannot make a provider.
    """
    with pytest.raises(InvalidConfigError, match="entity id"):
        SAMLProvider(metadata_for(idp_keys, entity_id=""), "t")
    empty = SAMLMetadata(entity_id="urn:a", sign_on_url="https://s", certificate="")
    with pytest.raises(InvalidConfigError, match="no signing certificate"):
        SAMLProvider(empty, "t")


def test_metadata_roundtrip_of_an_idp(idp_keys: KeyPair) -> None:
    """
    SP metadata is well-formed SAML metadata, but has no IdP to parse.
    """
    with pytest.raises(Exception, match="no IDPSSODescriptor"):
        parse_saml_metadata(_provider(idp_keys).sp_metadata())


def test_sp_metadata_announces_the_name_id_format() -> None:
    """
    A NameIDFormat given to the SP metadata is published.
    """
    from zerfoo_cloud.sso import build_sp_metadata

    xml = build_sp_metadata(
        sp_entity_id="sp", acs_url="https://a", name_id_format="urn:f"
    )
    assert etree.fromstring(xml).findtext(f".//{{{MD}}}NameIDFormat") == "urn:f"
