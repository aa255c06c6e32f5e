"""
Validations per second of one signed SAML Response: zerfoo-cloud's
`SAMLProvider` against python3-saml (OneLogin's toolkit), both verifying the
same document with xmlsec, side by side in one run.

Both validate in strict mode: signature, issuer, destination, recipient,
audience, time window and InResponseTo. Replay detection is turned off for
zerfoo-cloud here (a cache that remembers nothing), since the same response
is validated again and again; python3-saml has none.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from tests.sso._idp import (
    ACS_URL,
    IDP_ENTITY,
    REQUEST_ID,
    SP_ENTITY,
    SSO_URL,
    assertion_of,
    build_response,
    make_keypair,
    metadata_for,
    sign,
    to_bytes,
)
from zerfoo_cloud import SAMLProvider

#: Seconds each side is measured for.
DURATION = 4.0


class _NoReplayCache:
    """
    Forgets every id, so the benchmark can validate one response repeatedly.
    """

    def add(self, key: str, expires_at: float, now: float) -> bool:
        return True

    def close(self) -> None:
        pass


def _rate(validate: Callable[[], object]) -> float:
    validate()  # warm up
    count = 0
    started = time.perf_counter()
    deadline = started + DURATION
    while time.perf_counter() < deadline:
        for _ in range(20):
            validate()
        count += 20
    return count / (time.perf_counter() - started)


def main() -> None:
    """
    Print both rates and their ratio.
    """
    keys = make_keypair("idp.example.test")
    now = time.time()
    root = build_response(
        issued_at=now - 1, not_before=now - 60, not_on_or_after=now + 3600
    )
    sign(assertion_of(root), keys)
    sign(root, keys)
    form = base64.b64encode(to_bytes(root))

    ours = SAMLProvider(
        metadata_for(keys),
        "tenant-1",
        sp_entity_id=SP_ENTITY,
        acs_url=ACS_URL,
        replay_cache=_NoReplayCache(),
    )
    assert ours.validate_assertion(form, request_id=REQUEST_ID).subject

    settings = OneLogin_Saml2_Settings(
        {
            "strict": True,
            "sp": {
                "entityId": SP_ENTITY,
                "assertionConsumerService": {
                    "url": ACS_URL,
                    "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
                },
            },
            "idp": {
                "entityId": IDP_ENTITY,
                "singleSignOnService": {
                    "url": SSO_URL,
                    "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
                },
                "x509cert": keys.cert_b64,
            },
            "security": {"rejectDeprecatedAlgorithm": True},
        },
        sp_validation_only=True,
    )
    request_data = {
        "https": "on",
        "http_host": "sp.example.test",
        "script_name": "/saml/acs",
        "server_port": "443",
    }

    def theirs() -> None:
        response = OneLogin_Saml2_Response(settings, form)
        if not response.is_valid(request_data, REQUEST_ID, raise_exceptions=True):
            raise AssertionError(response.get_error())

    theirs()

    ours_rate = _rate(lambda: ours.validate_assertion(form, request_id=REQUEST_ID))
    theirs_rate = _rate(theirs)
    print(f"   zerfoo-cloud SAMLProvider: {ours_rate:9.0f} validations/s")
    print(f"   python3-saml (OneLogin):   {theirs_rate:9.0f} validations/s")
    print(f"   ratio: {ours_rate / theirs_rate:.2f}x (target: > 1)")


if __name__ == "__main__":
    main()
