"""
A raw HTTP/1.1 client over a socket: sends exactly the request line, headers
(duplicates included) and body it is given, and reads the whole response,
noting whether it ended cleanly.
"""

from __future__ import annotations

import socket

import attrs

#: Seconds a request may take before the client gives up on it.
TIMEOUT = 30.0


@attrs.frozen
class Response:
    """
    What the client saw: *status* 0 when no status line came back, and
    *complete* false when the connection ended before the body did.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    complete: bool

    def header(self, name: str) -> str | None:
        """The first value of header *name*, or ``None``."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


def _dechunk(data: bytes) -> tuple[bytes, bool]:
    out: list[bytes] = []
    pos = 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            return b"".join(out), False
        try:
            size = int(data[pos:end].split(b";")[0], 16)
        except ValueError:
            return b"".join(out), False
        if size == 0:
            return b"".join(out), True
        chunk = data[end + 2 : end + 2 + size]
        out.append(chunk)
        if len(chunk) < size:
            return b"".join(out), False
        pos = end + 2 + size + 2


def parse_response(raw: bytes) -> Response:
    """
    Parse a whole HTTP/1.1 response read until the server closed the
    connection.
    """
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return Response(0, (), raw, complete=False)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        return Response(0, (), raw, complete=False)
    headers = tuple(
        (name.strip().lower(), value.strip())
        for name, _, value in (line.partition(":") for line in lines[1:])
    )
    fields = dict(headers)
    if fields.get("transfer-encoding", "").lower() == "chunked":
        body, complete = _dechunk(rest)
    elif "content-length" in fields:
        size = int(fields["content-length"])
        body, complete = rest[:size], len(rest) >= size
    else:
        body, complete = rest, True
    return Response(status, headers, body, complete)


def send(
    address: tuple[str, int],
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
) -> Response:
    """
    Send one request on a new connection (``Connection: close``) and return
    the response.
    """
    lines = [f"{method} {target} HTTP/1.1", f"Host: {address[0]}:{address[1]}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines += ["Connection: close", f"Content-Length: {len(body)}", "", ""]
    request = "\r\n".join(lines).encode("latin-1") + body
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.sendall(request)
        parts: list[bytes] = []
        try:
            while data := sock.recv(1 << 16):
                parts.append(data)
        except ConnectionResetError:
            pass
    return parse_response(b"".join(parts))
