"""
What passes through `zerfoo_cloud.http.proxy.UpstreamProxy` and what does
not: the base URL's parts, the paths that may be forwarded, and the headers
dropped each way.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Final
from urllib.parse import quote, urlsplit

from zerfoo_cloud.errors import InvalidConfigError

__all__ = [
    "HOP_BY_HOP_HEADERS",
    "PATH_SAFE",
    "REQUEST_ONLY_HEADERS",
    "RESPONSE_ONLY_HEADERS",
    "parse_base_url",
    "safe_path",
    "strip_headers",
]

#: Headers that describe one connection, not the message (RFC 9110, 7.6.1).
#: They are dropped both ways, with every ``proxy-*`` header and every header
#: that a ``Connection`` header names.
HOP_BY_HOP_HEADERS: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# The client's credentials stay here; Host and Accept-Encoding are set by the
# proxy itself (identity, so a middleware around the proxy can read the body
# to meter it); Expect is answered by the server in front.
REQUEST_ONLY_HEADERS: Final = frozenset(
    {
        b"host",
        b"authorization",
        b"x-api-key",
        b"api-key",
        b"cookie",
        b"accept-encoding",
        b"expect",
    }
)
# An upstream must not set cookies on the proxy's origin. Date and Server are
# the front server's to send (it always does), as nginx's proxy_pass hides
# them: sent twice, Date would be invalid.
RESPONSE_ONLY_HEADERS: Final = frozenset({b"set-cookie", b"date", b"server"})

_MAX_PORT: Final = 65535
PATH_SAFE: Final = "/:@!$&'()*+,;=-._~"


def parse_base_url(base_url: str) -> tuple[str, str]:
    """
    The origin (``scheme://host[:port]``, lowercased) and the path prefix
    (percent-encoded, no trailing slash) of an upstream's *base_url*.

    Raises:
        InvalidConfigError: Not plain http(s) with a host and a valid port,
            or with credentials, a query or a fragment.
    """
    try:
        url = urlsplit(base_url)
        port = url.port
    except (ValueError, TypeError, AttributeError) as exc:
        msg = f"base_url {base_url!r} is not a URL: {exc}"
        raise InvalidConfigError(msg, field="base_url") from exc
    port_ok = port is None or 0 < port <= _MAX_PORT
    if url.scheme not in {"http", "https"} or not url.hostname or not port_ok:
        msg = f"base_url must be an http:// or https:// URL with a host and a valid port, not {base_url!r}"
        raise InvalidConfigError(msg, field="base_url")
    if url.username is not None or url.password is not None:
        # Not echoed: the URL holds a credential.
        msg = "base_url must not hold credentials; pass the upstream key as api_key"
        raise InvalidConfigError(msg, field="base_url")
    if url.query or url.fragment or "?" in base_url or "#" in base_url:
        msg = f"base_url must not have a query or fragment, not {base_url!r}"
        raise InvalidConfigError(msg, field="base_url")
    if not url.netloc.isascii() or any(c.isspace() for c in base_url):
        msg = f"base_url {base_url!r} is not a URL: not plain ASCII"
        raise InvalidConfigError(msg, field="base_url")
    origin = f"{url.scheme}://{url.netloc.lower()}"
    return origin, quote(url.path, safe=PATH_SAFE + "%").rstrip("/")


def strip_headers(
    headers: Iterable[tuple[bytes, bytes]], also: frozenset[bytes]
) -> list[tuple[bytes, bytes]]:
    """
    *headers* with lowercased names, less the hop-by-hop ones, every
    ``proxy-*`` one, those a ``Connection`` header names, and those in *also*.
    """
    dropped = _dropped(also)
    kept = []
    named: set[bytes] = set()
    for raw_name, value in headers:
        name = raw_name.lower()
        if name == b"connection":
            named.update(token.strip().lower() for token in value.split(b","))
        elif name not in dropped and not name.startswith(b"proxy-"):
            kept.append((name, value))
    if named:
        return [(name, value) for name, value in kept if name not in named]
    return kept


@functools.cache
def _dropped(also: frozenset[bytes]) -> frozenset[bytes]:
    return HOP_BY_HOP_HEADERS | also


def safe_path(path: str) -> bool:
    """
    Whether the decoded request path may be forwarded: it starts with
    ``/`` and holds no ``.`` or ``..`` segment (``%2e%2e`` decodes to one),
    no backslash (``%5c``: some servers read it as ``/``) and no ``;``
    (path parameters, which some servers strip before routing).
    """
    if not path.startswith("/") or "\\" in path or ";" in path:
        return False
    if "." not in path:
        return True
    return not any(part in {".", ".."} for part in path.split("/"))
