"""
A test SAML IdP a browser can sign in through: its sign-on page reads the
AuthnRequest of the HTTP-Redirect binding, signs an answer for the user it
is told to sign in (with tests.sso._idp, as a real IdP signs) and hands it to
the browser in a form that posts itself to the SP's ACS (the HTTP-POST
binding). Only the console is under the console's CSP; this page is not.
"""

from __future__ import annotations

import base64
import html
import time
import zlib
from collections.abc import Sequence

import attrs
from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.sso._idp import (
    SAMLP,
    KeyPair,
    assertion_of,
    build_response,
    q,
    sign,
    to_bytes,
)

#: The IdP's entity id (the metadata and every answer name it).
ENTITY_ID = "https://idp.browser.test/metadata"
#: The attribute that carries the user's groups (the role map reads it).
GROUPS_ATTRIBUTE = "groups"


@attrs.define
class SignedInUser:
    """
    Who the IdP signs in next: a subject (an e-mail address) and groups.
    """

    subject: str = "alice@example.com"
    groups: Sequence[str] = ("zc-admins",)


def metadata_xml(keys: KeyPair, sign_on_url: str) -> str:
    """
    The IdP's metadata: its signing certificate and its sign-on URL.
    """
    return (
        f'<md:EntityDescriptor entityID="{ENTITY_ID}" '
        'xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        'xmlns:ds="http://www.w3.org/2000/09/xmldsig#">'
        '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>'
        f"{keys.cert_b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
        '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
        f'Location="{html.escape(sign_on_url)}"/>'
        "</md:IDPSSODescriptor></md:EntityDescriptor>"
    )


def _authn_request(encoded: str) -> etree._Element:
    """The AuthnRequest of a redirect-binding SAMLRequest (base64 of raw DEFLATE)."""
    return etree.fromstring(zlib.decompress(base64.b64decode(encoded), -15))


def signed_answer(keys: KeyPair, request: etree._Element, user: SignedInUser) -> str:
    """
    The base64 SAMLResponse answering *request* for *user*, issued now and
    signed with *keys* (the assertion, as most IdPs sign it).
    """
    issuer = request.find(q("urn:oasis:names:tc:SAML:2.0:assertion", "Issuer"))
    assert issuer is not None
    assert issuer.text
    acs = request.get("AssertionConsumerServiceURL")
    now = time.time()
    response = build_response(
        subject=user.subject,
        issuer=ENTITY_ID,
        audience=issuer.text,
        recipient=acs,
        destination=acs,
        in_response_to=request.get("ID"),
        issued_at=now,
        not_before=now - 60,
        not_on_or_after=now + 300,
        attributes={"email": [user.subject], GROUPS_ATTRIBUTE: list(user.groups)},
    )
    sign(assertion_of(response), keys)
    return base64.b64encode(to_bytes(response)).decode()


def _posting_page(acs: str, saml_response: str, relay_state: str) -> str:
    """A page whose form posts the answer to the ACS as soon as it loads."""
    return (
        "<!doctype html><title>Test IdP</title>"
        f'<form method="post" action="{html.escape(acs)}">'
        f'<input type="hidden" name="SAMLResponse" value="{html.escape(saml_response)}">'
        f'<input type="hidden" name="RelayState" value="{html.escape(relay_state)}">'
        '<button type="submit">Continue</button></form>'
        "<script>document.forms[0].submit()</script>"
    )


def idp_app(keys: KeyPair, user: SignedInUser) -> Starlette:
    """
    The IdP as an ASGI app: ``GET /sso`` signs *user* in (change the
    object's fields to sign in someone else next).
    """

    async def sso(request: Request) -> Response:
        encoded = request.query_params.get("SAMLRequest", "")
        if not encoded:
            return PlainTextResponse("no SAMLRequest", status_code=400)
        authn = _authn_request(encoded)
        assert authn.tag == q(SAMLP, "AuthnRequest"), authn.tag
        acs = authn.get("AssertionConsumerServiceURL", "")
        answer = signed_answer(keys, authn, user)
        relay_state = request.query_params.get("RelayState", "")
        return HTMLResponse(_posting_page(acs, answer, relay_state))

    return Starlette(routes=[Route("/sso", sso)])
