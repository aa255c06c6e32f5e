"""
Webhook signatures as the Standard Webhooks specification defines them
(https://www.standardwebhooks.com): `WebhookSecret`, `sign` for senders and
`verify` for receivers.

A delivery carries three headers::

    webhook-id: evt_…                      the event id (the same on every retry)
    webhook-timestamp: 1767225600          Unix seconds when this attempt was signed
    webhook-signature: v1,K5oZ…= v1,…      base64 HMAC-SHA256, one per secret

Each signature is ``base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))``
where *key* is the secret's bytes (the base64 after ``whsec_``). Any
Standard Webhooks library (``standardwebhooks`` for Python, JavaScript,
Go, ...) verifies it with the same ``whsec_`` secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from zerfoo_cloud.errors import InvalidConfigError, WebhookVerificationError

__all__ = [
    "DEFAULT_TOLERANCE",
    "SECRET_PREFIX",
    "WebhookSecret",
    "parse_secrets",
    "sign",
    "verify",
]

#: Every secret's text starts with this.
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
#: A receiver refuses a timestamp further than this many seconds from now.
DEFAULT_TOLERANCE = 5 * 60
#: A secret holds 24 to 64 bytes.
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64


class WebhookSecret:
    """
    One signing secret: ``whsec_`` and the base64 of 24 to 64 random bytes.

    Its `repr` and `str` never show it (``WebhookSecret(whsec_…)``); only
    `reveal` does, for the one place that must (writing a new secret out).

    Raises:
        InvalidConfigError: not ``whsec_`` and base64 of 24 to 64 bytes
            (the message never holds the text).

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_key",)

    def __init__(self, text: str) -> None:
        body = text.strip().removeprefix(SECRET_PREFIX) if isinstance(text, str) else ""
        try:
            key = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not (
            isinstance(text, str)
            and text.strip().startswith(SECRET_PREFIX)
            and MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES
        ):
            msg = (
                f"a webhook secret is {SECRET_PREFIX!r} and the base64 of "
                f"{MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes "
                "(make one with 'zerfoo-cloud alerts new-secret')"
            )
            raise InvalidConfigError(msg, field="webhook_secret")
        self._key = key

    @classmethod
    def generate(cls) -> WebhookSecret:
        """
        A new secret of 32 random bytes.
        """
        return cls(SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode())

    def reveal(self) -> str:
        """
        The secret's text (``whsec_…``): give it to the receiver, never log it.
        """
        return SECRET_PREFIX + base64.b64encode(self._key).decode()

    def signature(self, msg_id: str, timestamp: int, body: bytes) -> str:
        """
        The signature of *body* sent as *msg_id* at *timestamp*: ``v1,``
        and the base64 HMAC-SHA256 of ``"{id}.{timestamp}.{body}"``.
        """
        signed = f"{msg_id}.{timestamp}.".encode() + body
        digest = hmac.new(self._key, signed, hashlib.sha256).digest()
        return "v1," + base64.b64encode(digest).decode()

    def __repr__(self) -> str:
        return f"WebhookSecret({SECRET_PREFIX}…)"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[Any, ...]:
        # Pickling would write the key wherever the pickle goes.
        msg = "a webhook secret is not pickled"
        raise TypeError(msg)


def parse_secrets(text: str) -> tuple[WebhookSecret, ...]:
    """
    The secrets in *text*: ``whsec_…`` values separated by spaces, commas
    or new lines (the form of ``ZERFOO_CLOUD_WEBHOOK_SECRET`` and of a
    secret file; lines starting with ``#`` are skipped). Several secrets
    let a receiver move to a new one: each delivery is signed with all.

    Raises:
        InvalidConfigError: no secret, or one is malformed (the message
            says which by position, never by value).
    """
    words = [
        word
        for line in text.splitlines()
        if not line.lstrip().startswith("#")
        for word in line.replace(",", " ").split()
    ]
    if not words:
        msg = "no webhook secret given"
        raise InvalidConfigError(msg, field="webhook_secret")
    found = []
    for i, word in enumerate(words, 1):
        try:
            found.append(WebhookSecret(word))
        except InvalidConfigError as exc:  # noqa: PERF203 - once at start
            msg = f"webhook secret {i} of {len(words)} is malformed: {exc}"
            raise InvalidConfigError(msg, field="webhook_secret") from None
    return tuple(found)


def sign(
    secrets: Sequence[WebhookSecret], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """
    The Standard Webhooks headers of *body* sent as *msg_id* at
    *timestamp* (Unix seconds): ``webhook-id``, ``webhook-timestamp`` and
    ``webhook-signature`` with one ``v1,`` signature per secret, space
    separated.
    """
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": " ".join(
            s.signature(msg_id, int(timestamp), body) for s in secrets
        ),
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    lowered = {str(k).lower(): v for k, v in headers.items()}
    value = lowered.get(name)
    if not isinstance(value, str) or not value:
        msg = f"the {name} header is missing"
        raise WebhookVerificationError(msg, reason="headers")
    return value


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secrets: WebhookSecret | str | Iterable[WebhookSecret | str],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> str:
    """
    Check a received webhook; return its ``webhook-id`` (keep the ids seen
    for *tolerance* seconds and drop repeats: a retry, or a replay inside
    the window, carries the same id).

    Args:
        body: the raw request body, exactly as received.
        headers: the request's headers (any case).
        secrets: the secret(s), ``whsec_…`` text or `WebhookSecret`; a
            signature made with any of them is accepted.
        tolerance: seconds the ``webhook-timestamp`` may be from *now*,
            either way.
        now: the time, Unix seconds (default: the clock).

    Raises:
        WebhookVerificationError: a header is missing or malformed, the
            timestamp is outside the tolerance, or no signature matches
            (its *reason* says which).
    """
    if isinstance(secrets, (str, WebhookSecret)):
        secrets = [secrets]
    keys = [s if isinstance(s, WebhookSecret) else WebhookSecret(s) for s in secrets]
    msg_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    given = _header(headers, "webhook-signature")
    if not stamp.isdigit() or len(stamp) > 12:  # noqa: PLR2004 - far past 2242
        msg = "the webhook-timestamp header is not Unix seconds"
        raise WebhookVerificationError(msg, reason="headers")
    timestamp = int(stamp)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        msg = f"the webhook timestamp is more than {tolerance:g} seconds from now"
        raise WebhookVerificationError(msg, reason="timestamp")
    offered = {part for part in given.split() if part.startswith("v1,")}
    for key in keys:
        expected = key.signature(msg_id, timestamp, body)
        if any(hmac.compare_digest(expected, s) for s in offered):
            return msg_id
    msg = "no webhook signature matches the secret(s)"
    raise WebhookVerificationError(msg, reason="signature")
