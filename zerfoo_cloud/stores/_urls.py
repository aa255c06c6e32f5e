"""
Store URLs: what each form means, the errors of a bad one, and how one is
shown with its password replaced by ``***``.

Records (tenants, billing, audit) take a plain folder path,
``lmdb:///absolute/folder``, ``memory://`` or ``postgresql://`` (also
``postgres://``). Counters (limits, concurrency slots, the SAML replay
cache) take a plain folder path, ``lmdb:///absolute/folder``,
``memory://``, ``redis://`` or ``rediss://`` (``?cluster=1`` for a Redis
Cluster). See ``docs/fleet.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NoReturn
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import attrs

from zerfoo_cloud.errors import InvalidConfigError

__all__ = ["StoreTarget", "parse_counters_url", "parse_records_url", "redact_url"]

#: What stands where a URL's password was.
HIDDEN = "***"
#: ``scheme://`` at the start: a URL, not a folder path.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
#: ``scheme:`` at the start of what is not a URL.
_TYPO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
#: A libpq ``key=value`` connection string (``host=h dbname=d``).
_KEYWORDS = re.compile(
    r"^\s*(host|hostaddr|port|dbname|user|password|passfile|service|sslmode)\s*="
)
#: Query parameters whose value is a secret in some backend.
_SECRET_PARAMS = re.compile(r"pass|secret|token|key", re.IGNORECASE)
#: The query parameters of a Redis counters URL this library reads ...
_REDIS_OWN = ("cluster", "prefix", "lease_seconds", "socket_timeout", "connect_timeout")
#: ... and those passed on to redis-py (TLS settings of ``rediss://``).
_REDIS_PASSED = (
    "ssl_ca_certs",
    "ssl_cert_reqs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_TIMEOUTS = ("lease_seconds", "socket_timeout", "connect_timeout")
#: Longer durations (about 31 years) are refused.
_MAX_SECONDS = 1e9


def redact_url(url: str) -> str:
    """
    Return *url* with its password (and the value of any query parameter
    whose name says pass, secret, token or key) replaced by ``***``.

    A URL with a user but no password (``redis://token@host``) hides the
    user, since some servers take the password there. A folder path comes
    back as it is. The result is safe for messages, logs and reprs, even
    for text that does not parse as a URL.
    """
    scheme = _SCHEME.match(url)
    if scheme is None:
        return url
    head, rest = url[: scheme.end()], url[scheme.end() :]
    # Everything up to the last "@" is hidden: a password may hold "/", "?",
    # "#" or "@" unescaped (an "@" in the query hides too much, never too
    # little).
    at = rest.rfind("@")
    hidden = ""
    if at >= 0:
        user, colon, _ = rest[:at].partition(":")
        plain_user = colon and not set(user) & set("/?#")
        hidden = f"{user}:{HIDDEN}@" if plain_user else f"{HIDDEN}@"
        rest = rest[at + 1 :]
    if "?" in rest:
        rest, _, query = rest.partition("?")
        rest += "?" + _redact_query(query)
    return head + hidden + rest


def _redact_query(query: str) -> str:
    fragment = ""
    if "#" in query:
        query, _, fragment = query.partition("#")
        fragment = "#" + fragment
    parts = []
    for item in query.split("&"):
        name, eq, _ = item.partition("=")
        # libpq decodes the name too: p%61ssword is password.
        secret = _SECRET_PARAMS.search(unquote(name))
        parts.append(f"{name}={HIDDEN}" if eq and secret else item)
    return "&".join(parts) + fragment


@attrs.frozen
class StoreTarget:
    """
    A parsed store URL: which backend, and where.

    Attributes:
        kind: ``"lmdb"``, ``"memory"``, ``"postgresql"`` or ``"redis"``.
        url: the URL to open (for Redis: without this library's query
            parameters), password included: never show it, show `shown`.
        shown: the URL as given, password replaced by ``***``.
        folder: the LMDB folder (``kind == "lmdb"``), else ``None``.
        options: for Redis, `cluster`, `prefix` and the timeouts read from
            the query, ready for `RedisConnection.from_url` and the stores.
    """

    kind: str
    url: str = attrs.field(repr=False)
    shown: str
    folder: Path | None = None
    options: dict[str, object] = attrs.field(factory=dict)


class _Problem:
    """Builds the one-line error of a bad URL of one role."""

    def __init__(self, role: str, url: str, where: str) -> None:
        self.role = role
        self.shown = redact_url(url)
        self.where = where

    def fail(self, why: str) -> NoReturn:
        """Raise the `InvalidConfigError` saying *why* the URL is bad."""
        msg = f"bad {self.role} store URL {self.shown!r} ({self.where}): {why}"
        raise InvalidConfigError(msg, field=self.role)


def _lmdb(url: str, problem: _Problem) -> StoreTarget:
    if _SCHEME.match(url) is None:
        if not url.strip():
            problem.fail("the folder path is empty")
        return StoreTarget("lmdb", url, problem.shown, folder=Path(url))
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        problem.fail("an lmdb:// URL takes no query parameters")
    if parts.netloc:
        msg = (
            "an lmdb:// URL takes an absolute path after three slashes "
            "(lmdb:///var/lib/zerfoo-cloud); for a relative folder give the "
            "plain path"
        )
        problem.fail(msg)
    path = unquote(parts.path)
    if not path.startswith("/") or path == "/":
        problem.fail("an lmdb:// URL needs a folder: lmdb:///var/lib/zerfoo-cloud")
    return StoreTarget("lmdb", url, problem.shown, folder=Path(path))


def _memory(url: str, problem: _Problem) -> StoreTarget:
    if url != "memory://":
        problem.fail("memory:// takes no host, path or query")
    return StoreTarget("memory", url, problem.shown)


def _host(url: str, problem: _Problem) -> None:
    why = ""
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError as exc:
        # urllib's message may quote the URL: show only its kind, and fail
        # outside this block so that no traceback chains it.
        port = "port" in str(exc).lower()
        why = (
            "the port is not a number from 0 to 65535" if port else "it does not parse"
        )
    if why:
        problem.fail(why)
    if not host:
        problem.fail("the URL names no host")


def _postgres(url: str, problem: _Problem) -> StoreTarget:
    query = dict(parse_qsl(urlsplit(url).query))
    if "host" not in query:
        _host(url, problem)
    return StoreTarget("postgresql", url, problem.shown)


def _flag(name: str, value: str, problem: _Problem) -> bool:
    if value.lower() not in _TRUE | _FALSE:
        problem.fail(f"{name} must be 1 or 0")
    return value.lower() in _TRUE


def _seconds(name: str, value: str, problem: _Problem) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < _MAX_SECONDS:
        problem.fail(f"{name} must be a positive number of seconds below 1e9")
    return seconds


def _redis(url: str, problem: _Problem) -> StoreTarget:
    _host(url, problem)
    parts = urlsplit(url)
    if parts.fragment:
        problem.fail("a Redis URL takes no #fragment")
    database = parts.path.strip("/")
    if database and not database.isdigit():
        problem.fail("the path must be a database number (/0)")
    options: dict[str, object] = {}
    passed = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in options:
            problem.fail(f"{name} is given twice")
        if name == "cluster":
            options[name] = _flag(name, value, problem)
        elif name in _TIMEOUTS:
            options[name] = _seconds(name, value, problem)
        elif name == "prefix":
            options[name] = value
        elif name in _REDIS_PASSED:
            passed.append((name, value))
        else:
            known = ", ".join((*_REDIS_OWN, *_REDIS_PASSED))
            problem.fail(f"unknown query parameter {quote(name)!r} (known: {known})")
    if options.get("cluster") and database not in {"", "0"}:
        problem.fail("a Redis Cluster has database 0 only")
    base = urlunsplit(parts._replace(query=urlencode(passed)))
    return StoreTarget("redis", base, problem.shown, options=options)


_RECORDS = {
    "lmdb": _lmdb,
    "memory": _memory,
    "postgresql": _postgres,
    "postgres": _postgres,
}
_COUNTERS = {
    "lmdb": _lmdb,
    "memory": _memory,
    "redis": _redis,
    "rediss": _redis,
}


def _parse(
    role: str,
    url: str,
    where: str,
    forms: Mapping[str, Callable[[str, _Problem], StoreTarget]],
    spelled: str,
) -> StoreTarget:
    problem = _Problem(role, url, where)
    scheme = _SCHEME.match(url)
    if scheme is None:
        typo = _TYPO.match(url)
        if typo and typo.group(1).lower() in _RECORDS.keys() | _COUNTERS.keys():
            # "redis:6379" or "postgresql:/h/db": a URL missing its "//",
            # not a folder of that name (shown as the URL, password hidden).
            name = typo.group(1)
            problem.shown = redact_url(f"{name}://{url[typo.end() :].lstrip('/')}")
            problem.fail(f"a URL needs '//' after the scheme: write {name}://")
        if _KEYWORDS.match(url):
            # libpq's key=value form: not a folder (not shown: a quoted
            # password may hold anything).
            problem.shown = "host=... (a key=value string)"
            problem.fail(
                "a libpq key=value string is not taken here: write "
                "postgresql://user@host:5432/dbname"
            )
        if "://" in url or url.startswith(":"):
            problem.fail(f"it is neither a folder path nor a URL ({spelled})")
        return _lmdb(url, problem)
    parse = forms.get(scheme.group(1).lower())
    if parse is None:
        problem.fail(f"unknown scheme {scheme.group(1)!r} (use {spelled})")
    return parse(url, problem)


def parse_records_url(url: str, where: str = "ZERFOO_CLOUD_DB, --db") -> StoreTarget:
    """
    Parse the URL of the records store (tenants, billing, audit).

    Raises:
        InvalidConfigError: *url* is not one of the forms; the one-line
            message names the setting (*where*), never the password.
    """
    spelled = "a folder, lmdb:///folder, memory:// or postgresql://"
    return _parse("records", url, where, _RECORDS, spelled)


def parse_counters_url(
    url: str, where: str = "ZERFOO_CLOUD_COUNTERS, --counters"
) -> StoreTarget:
    """
    Parse the URL of the counters store (limits, slots, replay cache).

    Raises:
        InvalidConfigError: *url* is not one of the forms; the one-line
            message names the setting (*where*), never the password.
    """
    spelled = "a folder, lmdb:///folder, memory://, redis:// or rediss://"
    return _parse("counters", url, where, _COUNTERS, spelled)
