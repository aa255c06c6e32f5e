"""
SessionSigner: signed, short-lived tenant-admin sessions.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import FakeClock
from zerfoo_cloud import InvalidConfigError, SessionError
from zerfoo_cloud.http.admin import Session, SessionSigner
from zerfoo_cloud.http.admin._sessions import (
    MAX_SESSION_TTL,
    MAX_SUBJECT_LENGTH,
    MAX_TOKEN_LENGTH,
    state_codec,
)

SECRET = b"s" * 32


def test_secret_of_32_bytes_is_accepted_and_31_refused() -> None:
    """A 32-byte secret makes a signer; 31 bytes and text are refused."""
    SessionSigner(b"x" * 32)
    with pytest.raises(InvalidConfigError, match="at least 32 bytes, not 31") as info:
        SessionSigner(b"x" * 31)
    assert info.value.field == "secret"
    with pytest.raises(InvalidConfigError, match="must be bytes"):
        SessionSigner("x" * 40)  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError, match="at least 32 bytes"):
        SessionSigner(b"x" * 32, previous_secrets=[b"short"])


@pytest.mark.parametrize("ttl", [1, 0.5, MAX_SESSION_TTL])
def test_ttl_within_bounds_is_accepted(ttl: float) -> None:
    """Any ttl above 0 up to a day is accepted."""
    assert SessionSigner(SECRET, ttl=ttl).ttl == ttl


@pytest.mark.parametrize(
    "ttl", [0, -1, MAX_SESSION_TTL + 1, float("nan"), float("inf"), True, "60"]
)
def test_ttl_out_of_bounds_is_refused(ttl: object) -> None:
    """A ttl of 0, past a day, or not a number is refused."""
    with pytest.raises(InvalidConfigError) as info:
        SessionSigner(SECRET, ttl=ttl)  # type: ignore[arg-type]
    assert info.value.field == "ttl"


def test_issue_and_verify_round_trip(clock: FakeClock) -> None:
    """A token verifies to its tenant, subject, expiry and issue time."""
    signer = SessionSigner(SECRET, ttl=600, clock=clock)
    token = signer.issue("acme", "alice@example.com", incarnation="i1")
    assert signer.verify(token) == Session(
        "acme", "alice@example.com", clock.now + 600, "i1", issued_at=clock.now
    )


def test_session_expires_at_its_expiry_and_not_before(clock: FakeClock) -> None:
    """A session is valid until just before expires_at and refused from then on."""
    signer = SessionSigner(SECRET, ttl=600, clock=clock)
    token = signer.issue("acme", "alice", incarnation="i1")
    clock.advance(599.999)
    assert signer.verify(token).tenant_id == "acme"
    clock.advance(0.001)
    with pytest.raises(SessionError, match="expired") as info:
        signer.verify(token)
    assert info.value.reason == "expired"


def test_expires_at_shortens_but_never_extends(clock: FakeClock) -> None:
    """An earlier expires_at (the IdP's session end) wins; a later one does not."""
    signer = SessionSigner(SECRET, ttl=600, clock=clock)
    short = signer.verify(
        signer.issue("acme", "a", incarnation="i1", expires_at=clock.now + 60)
    )
    assert short.expires_at == clock.now + 60
    long = signer.verify(
        signer.issue("acme", "a", incarnation="i1", expires_at=clock.now + 6000)
    )
    assert long.expires_at == clock.now + 600


def test_subject_limits(clock: FakeClock) -> None:
    """Subjects of 1 to 512 characters (any script) are kept; empty or longer are refused."""
    signer = SessionSigner(SECRET, clock=clock)
    longest = "\U0001f600" * MAX_SUBJECT_LENGTH
    token = signer.issue("acme", longest, incarnation="i1")
    assert len(token) <= MAX_TOKEN_LENGTH
    assert signer.verify(token).subject == longest
    for bad in ["", "x" * (MAX_SUBJECT_LENGTH + 1)]:
        with pytest.raises(InvalidConfigError) as info:
            signer.issue("acme", bad, incarnation="i1")
        assert info.value.field == "subject"


@pytest.mark.parametrize("tenant_id", ["", "-acme", "a b", "x" * 129])
def test_bad_tenant_ids_are_refused(tenant_id: str) -> None:
    """A session is only issued for a well-formed tenant id."""
    with pytest.raises(InvalidConfigError):
        SessionSigner(SECRET).issue(tenant_id, "alice", incarnation="i1")


def test_another_secret_is_refused_and_a_previous_one_accepted(
    clock: FakeClock,
) -> None:
    """Tokens of another secret fail the signature; previous secrets still verify."""
    old = SessionSigner(b"o" * 32, clock=clock)
    token = old.issue("acme", "alice", incarnation="i1")
    with pytest.raises(SessionError, match="signature") as info:
        SessionSigner(SECRET, clock=clock).verify(token)
    assert info.value.reason == "signature"
    rotated = SessionSigner(SECRET, clock=clock, previous_secrets=[b"o" * 32])
    assert rotated.verify(token).subject == "alice"
    # The rotated signer signs with the new secret only.
    with pytest.raises(SessionError):
        old.verify(rotated.issue("acme", "alice", incarnation="i1"))


def test_payload_edit_breaks_the_signature(clock: FakeClock) -> None:
    """Re-encoding another tenant into a valid token's payload is refused."""
    import base64
    import json

    signer = SessionSigner(SECRET, clock=clock)
    version, payload, signature = signer.issue("acme", "alice", incarnation="i1").split(
        "."
    )
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["t"] = "globex"
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    with pytest.raises(SessionError) as info:
        signer.verify(f"{version}.{forged}.{signature}")
    assert info.value.reason == "signature"


@given(position=st.integers(min_value=0), replacement=st.characters())
def test_any_single_character_change_is_refused(
    position: int, replacement: str
) -> None:
    """Changing any one character of a token makes it invalid."""
    clock = FakeClock()
    signer = SessionSigner(SECRET, clock=clock)
    token = signer.issue("acme", "alice@example.com", incarnation="i1")
    position %= len(token)
    if token[position] == replacement:
        return
    tampered = token[:position] + replacement + token[position + 1 :]
    with pytest.raises(SessionError):
        signer.verify(tampered)


@given(garbage=st.one_of(st.text(max_size=200), st.binary(max_size=50), st.none()))
def test_garbage_is_refused_as_malformed_or_unsigned(garbage: object) -> None:
    """Any other input raises SessionError and nothing else."""
    with pytest.raises(SessionError) as info:
        SessionSigner(SECRET).verify(garbage)  # type: ignore[arg-type]
    assert info.value.reason in {"malformed", "signature"}


@pytest.mark.parametrize(
    "token",
    [
        "",
        "v1",
        "v1.a",
        "v2.e30.AAAA",
        "v1.e30.AAAA.extra",
        "v1.e3!.AAAA",
        "v1.e30.A",
        "v1." + "A" * MAX_TOKEN_LENGTH,
    ],
)
def test_malformed_tokens(token: str) -> None:
    """Tokens of the wrong shape, version, alphabet or length are malformed."""
    with pytest.raises(SessionError, match="malformed") as info:
        SessionSigner(SECRET).verify(token)
    assert info.value.reason == "malformed"


def test_state_tokens_and_sessions_are_not_interchangeable(clock: FakeClock) -> None:
    """A token made for another purpose never verifies as a session, and back."""
    signer = SessionSigner(SECRET, clock=clock)
    state = state_codec(signer, "saml-request")
    other = state.dumps({"t": "acme", "s": "alice", "e": clock.now + 60})
    with pytest.raises(SessionError, match="signature"):
        signer.verify(other)
    with pytest.raises(SessionError, match="signature"):
        state.loads(signer.issue("acme", "alice", incarnation="i1"))
    with pytest.raises(InvalidConfigError):
        state_codec(signer, "session")


def test_repr_shows_no_secret() -> None:
    """The repr names the ttl and key count, never a secret."""
    text = repr(SessionSigner(SECRET, previous_secrets=[b"p" * 32]))
    assert text == "<SessionSigner ttl=3600s keys=2>"
    assert "sss" not in text
