"""
A SAML service provider for one tenant, in a few lines of WSGI.

``GET /login`` redirects to the IdP with an AuthnRequest; the IdP posts the
signed Response back to ``POST /saml/acs``, which answers with the user. Run
it with an IdP's metadata file::

    python examples/saml_sp.py idp-metadata.xml

The request id lives in a cookie here to keep the example short; a real
application keeps it in its server-side session.
"""

from __future__ import annotations

import sys
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING
from wsgiref.simple_server import make_server

from zerfoo_cloud import SAMLError, SAMLProvider, parse_saml_metadata

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

BASE = "http://localhost:8000"


def make_app(provider: SAMLProvider) -> WSGIApplication:
    """
    Return the WSGI application of the example.
    """

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/login":
            redirect = provider.authn_request(relay_state="/")
            start_response(
                "302 Found",
                [("Location", redirect.url), ("Set-Cookie", f"saml_req={redirect.id}")],
            )
            return [b""]
        if path == "/saml/acs" and environ.get("REQUEST_METHOD") == "POST":
            size = int(environ.get("CONTENT_LENGTH") or 0)
            form = urllib.parse.parse_qs(environ["wsgi.input"].read(size).decode())
            cookie = environ.get("HTTP_COOKIE", "")
            request_id = cookie.partition("saml_req=")[2].split(";")[0] or None
            try:
                user = provider.validate_assertion(
                    form["SAMLResponse"][0].encode(), request_id=request_id
                )
            except (SAMLError, KeyError) as exc:
                start_response("403 Forbidden", [("Content-Type", "text/plain")])
                return [f"sign-in refused: {exc}\n".encode()]
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [f"hello {user.subject} ({user.email})\n".encode()]
        if path == "/saml/metadata":
            start_response("200 OK", [("Content-Type", "application/samlmetadata+xml")])
            return [provider.sp_metadata()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"try /login\n"]

    return app


def main(argv: list[str]) -> int:
    """
    Serve the example on port 8000 for the IdP whose metadata file is *argv[0]*.
    """
    metadata = parse_saml_metadata(Path(argv[0]).read_bytes())
    provider = SAMLProvider(
        metadata,
        "tenant-1",
        sp_entity_id=f"{BASE}/saml/metadata",
        acs_url=f"{BASE}/saml/acs",
    )
    with make_server("localhost", 8000, make_app(provider)) as server:
        print(f"open {BASE}/login")
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
