"""
Log redaction for ``zerfoo-cloud serve``: no log line carries a key.

Clients put keys where they should not: ``?api_key=...`` in a query, a key
as a path segment. uvicorn writes the request target verbatim to its access
log, so `RedactingFilter` rewrites every record before any handler writes it:

- in the access log's request target, every query value and every path
  segment that looks like a key (`looks_like_key`) becomes ``[redacted]``;
- in every other message and traceback, the secrets ``serve`` reads from the
  environment, tokens with the key prefix, ``Bearer`` tokens, URL query
  values and URL user information become ``[redacted]``.

`log_config` returns uvicorn's logging configuration with the filter on
every handler, and a root handler (warnings and above) so the project's
own loggers go through it too.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from zerfoo_cloud.tenants import API_KEY_PREFIX

__all__ = [
    "LOG_REDACTED",
    "SECRET_ENVS",
    "RedactingFilter",
    "log_config",
    "looks_like_key",
    "redact_target",
    "redact_text",
]

#: What a secret is replaced with in a log line (docs/deployment.md); records
#: use `zerfoo_cloud._redacted.REDACTED`.
LOG_REDACTED = "[redacted]"

#: The environment variables whose values never reach a log line.
SECRET_ENVS: tuple[str, ...] = (
    "ZERFOO_CLOUD_ADMIN_KEY",
    "ZERFOO_CLOUD_UPSTREAM_KEY",
    "ZERFOO_CLOUD_SESSION_SECRET",
    "ZERFOO_CLOUD_AUDIT_SECRET",
    "ZERFOO_CLOUD_METRICS_TOKEN",
)

# Shorter secrets would redact ordinary words; serve refuses none of them,
# but a 3-character secret is no secret.
_MIN_SECRET = 4
_MIN_RANDOM = 20
_RANDOM = re.compile(r"[A-Za-z0-9_\-]+")
_HAS_DIGIT = re.compile(r"\d")
_HAS_LETTER = re.compile(r"[A-Za-z]")
_PREFIXED = re.compile(re.escape(API_KEY_PREFIX) + r"[A-Za-z0-9_\-]{4,}")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")
_QUERY = re.compile(r"([?&;][^=&\s\"'#?]*=)[^&\s\"'#]+")
_USERINFO = re.compile(r"(://)[^/@\s\"']+@")


def looks_like_key(segment: str) -> bool:
    """
    Whether a path segment may be a key: it starts with the key prefix, or it
    is at least 20 URL-safe characters mixing letters and digits.

    .. versionadded:: 0.1.0
    """
    if segment.startswith(API_KEY_PREFIX):
        return True
    return (
        len(segment) >= _MIN_RANDOM
        and _RANDOM.fullmatch(segment) is not None
        and _HAS_DIGIT.search(segment) is not None
        and _HAS_LETTER.search(segment) is not None
    )


def redact_target(target: str, secrets: Iterable[str] = ()) -> str:
    """
    Return a request target (path and query) safe to log: every query value,
    every key-like path segment and every *secrets* occurrence redacted.

    .. versionadded:: 0.1.0
    """
    path, sep, query = target.partition("?")
    segments = [LOG_REDACTED if looks_like_key(s) else s for s in path.split("/")]
    safe = "/".join(segments)
    if sep:
        items = []
        for item in query.split("&"):
            name, eq, _ = item.partition("=")
            items.append(f"{name}={LOG_REDACTED}" if eq else LOG_REDACTED)
        safe += "?" + "&".join(items)
    return redact_text(safe, secrets)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """
    Return *text* with *secrets*, prefixed keys, bearer tokens, URL query
    values and URL user information redacted.

    .. versionadded:: 0.1.0
    """
    for secret in secrets:
        if len(secret) >= _MIN_SECRET:
            text = text.replace(secret, LOG_REDACTED)
            encoded = quote(secret, safe="")
            if encoded != secret:
                text = text.replace(encoded, LOG_REDACTED)
    text = _PREFIXED.sub(LOG_REDACTED, text)
    text = _BEARER.sub(r"\1" + LOG_REDACTED, text)
    text = _QUERY.sub(r"\1" + LOG_REDACTED, text)
    return _USERINFO.sub(r"\1" + LOG_REDACTED + "@", text)


def _secrets(environ: Mapping[str, str]) -> tuple[str, ...]:
    found = (environ.get(name, "") for name in SECRET_ENVS)
    # Longest first, so a secret that contains another is replaced whole.
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


class RedactingFilter(logging.Filter):
    """
    A logging filter that redacts keys and secrets from every record it sees
    (see the module's description); it never drops a record.

    Args:
        environ: where the secrets are read (default: the process environment).

    .. versionadded:: 0.1.0
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.secrets = _secrets(os.environ if environ is None else environ)
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        """
        Redact *record* in place; always keep it.
        """
        args = record.args
        if (
            record.name == "uvicorn.access"
            and isinstance(args, tuple)
            and len(args) == 5  # noqa: PLR2004 - uvicorn's access record
        ):
            record.args = (
                args[0],
                args[1],
                redact_target(str(args[2]), self.secrets),
                *args[3:],
            )
        else:
            message = record.getMessage()
            safe = redact_text(message, self.secrets)
            if safe != message:
                record.msg = safe
                record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, self.secrets)
        return True


def log_config() -> dict[str, Any]:
    """
    Return uvicorn's logging configuration with `RedactingFilter` on every
    handler and warnings of every other logger sent through it.

    .. versionadded:: 0.1.0
    """
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": f"{__name__}.RedactingFilter"}
    for handler in config["handlers"].values():
        handler["filters"] = [*handler.get("filters", []), "redact"]
    config["root"] = {"handlers": ["default"], "level": "WARNING"}
    return config
