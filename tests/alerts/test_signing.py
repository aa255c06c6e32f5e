"""
Standard Webhooks signatures: what `sign` makes, an independent library
verifies, and `verify` refuses tampered, stale and unsigned deliveries.
"""

from __future__ import annotations

import base64
import pickle

import pytest
from standardwebhooks.webhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as SWError

from zerfoo_cloud.alerts import (
    AlertEvent,
    WebhookSecret,
    WebhookVerificationError,
    parse_secrets,
    random_event_id,
    sign,
    verify,
)
from zerfoo_cloud.errors import InvalidConfigError

NOW = 1_800_000_000


def _event() -> AlertEvent:
    return AlertEvent(random_event_id(), "test", NOW, "acme", {"n": 1})


def test_a_signature_is_hmac_sha256_of_id_timestamp_and_body() -> None:
    """The signature is the spec's: base64 HMAC-SHA256 of "id.timestamp.body"."""
    import hashlib
    import hmac

    key = bytes(range(32))
    secret = WebhookSecret("whsec_" + base64.b64encode(key).decode())
    headers = sign([secret], "evt_1", NOW, b'{"a":1}')
    digest = hmac.new(key, f"evt_1.{NOW}.".encode() + b'{"a":1}', hashlib.sha256)
    assert headers == {
        "webhook-id": "evt_1",
        "webhook-timestamp": str(NOW),
        "webhook-signature": "v1," + base64.b64encode(digest.digest()).decode(),
    }


def test_the_standardwebhooks_library_verifies_our_signature() -> None:
    """The independent ``standardwebhooks`` package accepts what we sign."""
    import time

    secret = WebhookSecret.generate()
    event = _event()
    now = int(time.time())
    headers = sign([secret], event.id, now, event.body())
    payload = Webhook(secret.reveal()).verify(event.body(), headers)
    assert payload["id"] == event.id
    assert payload["type"] == "test"
    assert payload["data"] == {"n": 1}
    with pytest.raises(SWError):
        Webhook(secret.reveal()).verify(event.body() + b" ", headers)


def test_verify_accepts_what_the_standardwebhooks_library_signs() -> None:
    """Our `verify` accepts the signature the independent library makes."""
    from datetime import datetime, timezone

    secret = WebhookSecret.generate()
    body = b'{"x":1}'
    stamp = datetime.fromtimestamp(NOW, timezone.utc)
    signature = Webhook(secret.reveal()).sign("msg_1", stamp, body.decode())
    headers = {
        "Webhook-Id": "msg_1",
        "Webhook-Timestamp": str(NOW),
        "Webhook-Signature": signature,
    }
    assert verify(body, headers, secret.reveal(), now=NOW) == "msg_1"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda b, h: (b + b" ", h), "signature"),
        (lambda b, h: (b, {**h, "webhook-timestamp": str(NOW + 1)}), "signature"),
        (lambda b, h: (b, {**h, "webhook-id": "evt_other"}), "signature"),
        (lambda b, h: (b, {**h, "webhook-signature": "v1,AAAA"}), "signature"),
        (
            lambda b, h: (
                b,
                {**h, "webhook-signature": "v2," + h["webhook-signature"][3:]},
            ),
            "signature",
        ),
        (
            lambda b, h: (b, {k: v for k, v in h.items() if k != "webhook-id"}),
            "headers",
        ),
        (lambda b, h: (b, {**h, "webhook-timestamp": "soon"}), "headers"),
        (
            lambda b, h: (b, {k: v for k, v in h.items() if k != "webhook-signature"}),
            "headers",
        ),
    ],
    ids=[
        "body",
        "timestamp",
        "id",
        "signature",
        "version",
        "no-id",
        "bad-time",
        "unsigned",
    ],
)
def test_a_tampered_delivery_is_refused(change: object, reason: str) -> None:
    """Any change to the body, id, timestamp or signature is refused, saying why."""
    secret = WebhookSecret.generate()
    body = _event().body()
    headers = sign([secret], "evt_1", NOW, body)
    new_body, new_headers = change(body, headers)  # type: ignore[operator]
    with pytest.raises(WebhookVerificationError) as info:
        verify(new_body, new_headers, secret, now=NOW)
    assert info.value.reason == reason
    assert secret.reveal() not in str(info.value)


@pytest.mark.parametrize(
    ("offset", "ok"), [(300, True), (301, False), (-300, True), (-301, False)]
)
def test_the_timestamp_tolerance_holds_to_the_second(offset: int, ok: bool) -> None:
    """A delivery replayed more than the tolerance (5 minutes) later, or dated ahead, is refused."""
    secret = WebhookSecret.generate()
    headers = sign([secret], "evt_1", NOW, b"{}")
    if ok:
        assert verify(b"{}", headers, [secret], now=NOW + offset) == "evt_1"
    else:
        with pytest.raises(WebhookVerificationError, match="seconds from now") as info:
            verify(b"{}", headers, [secret], now=NOW + offset)
        assert info.value.reason == "timestamp"


def test_several_secrets_sign_with_each_so_receivers_can_rotate() -> None:
    """With two secrets, a receiver holding either one accepts the delivery."""
    old, new = WebhookSecret.generate(), WebhookSecret.generate()
    headers = sign([old, new], "evt_1", NOW, b"{}")
    assert len(headers["webhook-signature"].split()) == 2
    assert verify(b"{}", headers, old, now=NOW) == "evt_1"
    assert verify(b"{}", headers, [new.reveal()], now=NOW) == "evt_1"
    with pytest.raises(WebhookVerificationError):
        verify(b"{}", headers, WebhookSecret.generate(), now=NOW)


def test_a_secret_never_shows_in_repr_str_or_pickle() -> None:
    """A secret's repr and str hide it, and it refuses to be pickled."""
    secret = WebhookSecret.generate()
    text = secret.reveal()
    assert text not in repr(secret)
    assert text not in str(secret)
    assert text[6:] not in repr([secret])
    with pytest.raises(TypeError):
        pickle.dumps(secret)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "whsec_",
        "whsec_" + base64.b64encode(b"x" * 23).decode(),
        "whsec_" + base64.b64encode(b"x" * 65).decode(),
        base64.b64encode(b"x" * 32).decode(),
        "whsec_not*base64",
    ],
    ids=["empty", "bare", "23-bytes", "65-bytes", "no-prefix", "not-base64"],
)
def test_a_malformed_secret_is_refused_without_echoing_it(text: str) -> None:
    """A malformed secret gets a one-line error that does not hold it."""
    with pytest.raises(InvalidConfigError) as info:
        parse_secrets(f"whsec_{base64.b64encode(b'k' * 32).decode()}, {text or 'x'}")
    assert "secret 2 of 2" in str(info.value)
    if len(text) > 8:
        assert text not in str(info.value)


def test_secrets_at_the_size_limits_are_taken() -> None:
    """24 and 64 bytes are the smallest and largest secrets taken."""
    for size in (24, 64):
        text = "whsec_" + base64.b64encode(b"k" * size).decode()
        assert parse_secrets(f"# a comment\n{text}\n")[0].reveal() == text


def test_no_secret_at_all_is_refused() -> None:
    """Text with no secret in it is refused."""
    with pytest.raises(InvalidConfigError, match="no webhook secret"):
        parse_secrets("# only a comment\n")
