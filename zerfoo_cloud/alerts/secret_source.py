"""
`load_secrets`: the webhook signing secrets of a server or command, read
from the environment or a file, never from the command line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from zerfoo_cloud.alerts.signing import WebhookSecret, parse_secrets
from zerfoo_cloud.errors import InvalidConfigError

__all__ = ["WEBHOOK_SECRET_ENV", "load_secrets"]

#: The environment variable holding the webhook secret(s).
WEBHOOK_SECRET_ENV = "ZERFOO_CLOUD_WEBHOOK_SECRET"  # noqa: S105 - a variable name


def load_secrets(
    env: Mapping[str, str] | None = None, file: str | os.PathLike[str] | None = None
) -> tuple[WebhookSecret, ...]:
    """
    The secrets in *file* when given (``whsec_…`` values, one a line or
    separated by spaces or commas; ``#`` comments), else in
    `WEBHOOK_SECRET_ENV` of *env* (default: the process environment).
    The first signs alone unless more are given: give the new one beside
    the old while receivers move to it.

    Raises:
        InvalidConfigError: none given, the file cannot be read, or a
            secret is malformed; the message never holds a secret.
    """
    environ = os.environ if env is None else env
    if file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            msg = f"cannot read the webhook secret file {str(file)!r}: {type(exc).__name__}"
            raise InvalidConfigError(msg, field="webhook_secret_file") from None
        return parse_secrets(text)
    text = environ.get(WEBHOOK_SECRET_ENV, "")
    if not text.strip():
        msg = (
            f"webhooks need a signing secret: set {WEBHOOK_SECRET_ENV} or pass "
            "--webhook-secret-file (make one with 'zerfoo-cloud alerts new-secret')"
        )
        raise InvalidConfigError(msg, field="webhook_secret")
    return parse_secrets(text)
