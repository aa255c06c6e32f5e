"""
Real IdP responses and published attacks from the shared SAML test vectors.

Each vector comes with the SP context (time, audience, ACS URL, request id)
and the IdP certificate to pin; valid ones must be accepted with their
NameID, invalid ones rejected for the reason the manifest gives.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED
from zerfoo_cloud.errors import SAMLError
from zerfoo_cloud.sso import (
    SAMLAlgorithmError,
    SAMLExpiredError,
    SAMLInResponseToError,
    SAMLMetadata,
    SAMLProvider,
    SAMLRecipientError,
    SAMLReplayError,
    SAMLSignatureError,
    SAMLStructureError,
    SAMLUnsafeXMLError,
)

VECTORS = SHARED / "vectors" / "saml"
_MANIFEST = VECTORS / "manifest.json"
_SHA1 = "sha1"
#: Any certificate, for the two vectors that are not SAML (they name none).
_FALLBACK_CERT = "certs/crewjam_google_C02dfl1r1.pem"

#: Why each invalid vector must be rejected: the error class, and a piece of
#: its message.
REASONS: dict[str, tuple[type[SAMLError], str]] = {
    "i01_xsw1": (SAMLStructureError, "more than one element"),
    "i02_xsw2": (SAMLStructureError, "more than one element"),
    "i03_xsw3_derived": (SAMLStructureError, "2 assertions"),
    "i04_xsw4_derived": (SAMLStructureError, "2 assertions"),
    "i05_xsw5_derived": (SAMLStructureError, "2 assertions"),
    "i06_xsw6_derived": (SAMLStructureError, "2 assertions"),
    "i07_xsw7_derived": (SAMLStructureError, "2 assertions"),
    "i08_xsw8_derived": (SAMLStructureError, "2 assertions"),
    "i09_pysaml2_xsw_assertion_in_assertion": (SAMLStructureError, "2 assertions"),
    "i10_signature_stripped": (SAMLSignatureError, "neither"),
    "i11_attacker_cert_in_keyinfo": (SAMLSignatureError, "does not verify"),
    "i12_wrong_signing_key": (SAMLSignatureError, "does not verify"),
    "i13_hmac_signature_keyinfo_key": (SAMLAlgorithmError, "hmac-sha1"),
    "i14_google_comment_text_extension": (SAMLSignatureError, "does not verify"),
    "i15_cdata_in_nameid": (SAMLSignatureError, "does not verify"),
    "i16_tampered_nameid": (SAMLSignatureError, "does not verify"),
    "i17_billion_laughs": (SAMLUnsafeXMLError, "DOCTYPE"),
    "i18_xxe_external_entity": (SAMLUnsafeXMLError, "DOCTYPE"),
    "i19_recipient_mismatch": (SAMLRecipientError, "Recipient"),
    "i20_inresponseto_mismatch": (SAMLInResponseToError, "invalid_inresponse"),
    "i21_duplicate_response_signature": (SAMLSignatureError, "2 signatures"),
    "i22_google_expired": (SAMLExpiredError, "expired"),
}


def _manifest() -> list[dict[str, Any]]:
    if not _MANIFEST.exists():
        return []
    entries: list[dict[str, Any]] = json.loads(_MANIFEST.read_text(encoding="utf-8"))
    return entries


def _entries(expected: str) -> list[Any]:
    entries = [e for e in _manifest() if e["expected"] == expected]
    if not entries:
        return [
            pytest.param(
                None,
                marks=pytest.mark.skip(
                    reason=f"the SAML test vectors are not at {VECTORS}"
                ),
                id="no-vectors",
            )
        ]
    return [pytest.param(e, id=e["id"]) for e in entries]


def _uses_sha1(entry: dict[str, Any]) -> bool:
    methods = entry.get("signature_methods", []) + entry.get("digest_methods", [])
    return any(m.endswith(_SHA1) for m in methods)


def _at(entry: dict[str, Any]) -> float:
    when = entry.get("validate_at")
    if when is None:
        return 0.0
    return datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp()


def _provider(entry: dict[str, Any], *, allow_sha1: bool | None = None) -> SAMLProvider:
    cert = (VECTORS / (entry.get("idp_cert_file") or _FALLBACK_CERT)).read_text()
    metadata = SAMLMetadata(
        entity_id=entry.get("issuer") or "urn:test:issuer-not-given",
        sign_on_url="https://idp.example.test/sso",
        certificate=cert,
    )
    now = _at(entry)
    return SAMLProvider(
        metadata,
        "tenant-1",
        sp_entity_id=entry.get("audience"),
        acs_url=entry.get("recipient"),
        clock=lambda: now,
        allow_sha1=_uses_sha1(entry) if allow_sha1 is None else allow_sha1,
    )


def _data(entry: dict[str, Any]) -> bytes:
    return Path(VECTORS, str(entry["file"])).read_bytes()


@pytest.mark.parametrize("entry", _entries("valid"))
def test_valid_vector_is_accepted(entry: dict[str, Any]) -> None:
    """
    A real IdP response is accepted at its time with its NameID as the subject.
    """
    identity = _provider(entry).validate_assertion(
        _data(entry), request_id=entry.get("in_response_to")
    )
    assert identity.subject == entry["name_id"]
    assert identity.tenant_id == "tenant-1"
    assert identity.issuer == entry["issuer"]
    assert identity.expires_at > _at(entry)


@pytest.mark.parametrize("entry", _entries("valid"))
def test_valid_vector_is_accepted_as_base64_once(entry: dict[str, Any]) -> None:
    """
    The base64 form field is accepted, and the same assertion a second time is a replay.
    """
    import base64

    provider = _provider(entry)
    form = base64.encodebytes(_data(entry))
    request_id = entry.get("in_response_to")
    provider.validate_assertion(form, request_id=request_id)
    with pytest.raises(SAMLReplayError, match="already used"):
        provider.validate_assertion(form, request_id=request_id)


@pytest.mark.parametrize("entry", _entries("valid"))
def test_sha1_vector_is_refused_unless_allowed(entry: dict[str, Any]) -> None:
    """
    A vector signed with SHA-1 is refused while SHA-1 is off; SHA-256 ones pass.
    """
    provider = _provider(entry, allow_sha1=False)
    request_id = entry.get("in_response_to")
    if _uses_sha1(entry):
        with pytest.raises(SAMLAlgorithmError, match="SHA-1"):
            provider.validate_assertion(_data(entry), request_id=request_id)
    else:
        assert provider.validate_assertion(_data(entry), request_id=request_id)


@pytest.mark.parametrize("entry", _entries("invalid"))
def test_invalid_vector_is_rejected_for_its_reason(entry: dict[str, Any]) -> None:
    """
    An attack or defective response is rejected with the error its reason names.
    """
    error, fragment = REASONS[entry["id"]]
    with pytest.raises(SAMLError) as caught:
        _provider(entry).validate_assertion(
            _data(entry), request_id=entry.get("in_response_to")
        )
    assert type(caught.value) is error, caught.value
    assert fragment in str(caught.value)


@pytest.mark.parametrize("entry", _entries("invalid"))
def test_invalid_vector_never_yields_the_attacker(entry: dict[str, Any]) -> None:
    """
    Even with SHA-1 allowed, no check relaxed by it lets an attack through.
    """
    with pytest.raises(SAMLError):
        _provider(entry, allow_sha1=True).validate_assertion(
            _data(entry), request_id=entry.get("in_response_to")
        )


def test_every_invalid_vector_has_a_reason() -> None:
    """
    The table of reasons covers exactly the manifest's invalid vectors.
    """
    ids = {e["id"] for e in _manifest() if e["expected"] == "invalid"}
    if not ids:
        pytest.skip(f"the SAML test vectors are not at {VECTORS}")
    assert ids == set(REASONS)


def test_vector_files_are_unchanged() -> None:
    """
    Every vector file still has the SHA-256 the manifest records.
    """
    import hashlib

    entries = _manifest()
    if not entries:
        pytest.skip(f"the SAML test vectors are not at {VECTORS}")
    for entry in entries:
        digest = hashlib.sha256((VECTORS / entry["file"]).read_bytes()).hexdigest()
        assert digest == entry["sha256"], entry["id"]


def test_shared_path_is_beside_the_checkout() -> None:
    """
    SHARED points at the shared folder next to the repository.
    """
    assert SHARED.name == "shared"
    assert isinstance(SHARED, Path)
