"""
Bounds on the request head for uvicorn, whatever HTTP parser it uses.

uvicorn bounds an incomplete head only with h11 (16 KiB, as a 400) and
never bounds the time a client takes to send it; with httptools one
connection can send an endless header line and the worker buffers all of it.
`limited_protocol` returns a subclass of uvicorn's h11 or httptools protocol
that counts the bytes of each request head before the parser sees them:

- a head (request line, headers and the blank line that ends them) longer
  than ``max_header_bytes`` gets ``431 Request Header Fields Too Large``
  with an OpenAI-shaped error, and the connection is closed, so a worker
  never holds more than that plus one read of a head;
- a connection that has not sent a whole head ``header_timeout`` seconds
  after it opened, or after the first byte of its next head, gets
  ``408 Request Timeout`` (or is closed if it sent nothing).

Bytes of a request body are not counted: a head begins when the parser has
read the whole previous request. The subclass uses only ``connection_made``,
``data_received``, ``connection_lost`` and ``on_response_complete`` of
uvicorn's protocols (and ``on_message_complete`` of the httptools one). It
hands uvicorn's protocol its transport wrapped in
`zerfoo_cloud._coalesced_writes.CoalescedWrites`, so a response's head and
body written in one turn of the event loop leave in one system call.

`zerfoo-cloud serve` gives uvicorn such a class built from its
configuration (``zerfoo_cloud._serve_protocol:ServeProtocol``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Literal

from zerfoo_cloud._coalesced_writes import CoalescedWrites
from zerfoo_cloud._openai_error import openai_error_body

__all__ = [
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_MAX_HEADER_BYTES",
    "Parser",
    "default_parser",
    "limited_protocol",
]

#: The largest request head served by default (64 KiB).
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
#: Seconds a client has by default to send a whole request head.
DEFAULT_HEADER_TIMEOUT = 10.0

#: The HTTP parsers uvicorn offers.
Parser = Literal["h11", "httptools"]

_logger = logging.getLogger("zerfoo_cloud.serve")

# The end of a head: a line end, an empty line. The byte before it must not
# be a line end, so blank lines sent before a request line end nothing.
_HEAD_END = re.compile(rb"[^\r\n]\r?\n\r?\n")
_TAIL = 4
# A head timer that fires this early (seconds) counts as on time.
_EARLY = 1e-3


def _response(status: int, reason: str, message: str, code: str) -> bytes:
    body = openai_error_body(message, "invalid_request_error", code)
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode("ascii")
    return head + body


class _HeadLimit:
    """
    The counting half of a limited protocol; the other base is uvicorn's.
    """

    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    header_timeout: float = DEFAULT_HEADER_TIMEOUT

    transport: Any
    _awaiting: bool
    _head_bytes: int
    _tail: bytes
    _timer: asyncio.TimerHandle | None
    _deadline: float | None
    _refused: bool

    def connection_made(self, transport: Any) -> None:
        self._awaiting = True
        self._head_bytes = 0
        self._tail = b""
        self._timer = None
        self._deadline = None
        self._refused = False
        super().connection_made(CoalescedWrites(transport))  # type: ignore[misc]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting and not self._scan(data):
            return
        super().data_received(data)  # type: ignore[misc]
        self._sync()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._sync()

    def _request_read(self) -> bool:
        """
        Whether the parser has read the whole current request.
        """
        raise NotImplementedError

    def _sync(self) -> None:
        if not self._awaiting and self._request_read():
            self._awaiting = True
            self._head_bytes = 0
            self._tail = b""

    def _scan(self, data: bytes) -> bool:
        """
        Count *data* as head bytes; return whether the parser may read it.
        """
        if self._head_bytes == 0 and not self._tail:
            self._arm()
        buf = self._tail + data
        end = _HEAD_END.search(buf)
        if end is None:
            self._head_bytes += len(data)
            self._tail = buf[-_TAIL:]
            if self._head_bytes > self.max_header_bytes:
                self._refuse_size()
                return False
            return True
        size = self._head_bytes + end.end() - len(self._tail)
        if size > self.max_header_bytes:
            self._refuse_size()
            return False
        self._disarm()
        self._awaiting = False
        self._started_request()
        return True

    def _started_request(self) -> None:
        """
        Called when a whole head has arrived, before the parser reads it.
        """

    def _refuse_size(self) -> None:
        _logger.warning("refused a request head over %d bytes", self.max_header_bytes)
        self._refuse(
            _response(
                431,
                "Request Header Fields Too Large",
                f"the request line and headers exceed {self.max_header_bytes} bytes",
                "request_header_fields_too_large",
            )
        )

    def _timed_out(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        if deadline - loop.time() > _EARLY:
            # The head timed now began after this timer was set.
            self._timer = loop.call_at(deadline, self._timed_out)
            return
        if not self._awaiting or self._refused or self.transport.is_closing():
            return
        if self._head_bytes == 0 and not self._tail:
            self._refused = True
            self.transport.close()
            return
        _logger.warning(
            "closed a connection that sent no whole request head in %gs",
            self.header_timeout,
        )
        self._refuse(
            _response(
                408,
                "Request Timeout",
                f"the request head did not arrive within {self.header_timeout:g} seconds",
                "request_timeout",
            )
        )

    def _refuse(self, response: bytes) -> None:
        self._refused = True
        self._cancel_timer()
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()

    def _arm(self) -> None:
        """
        Time a head from now. One timer per connection is kept: set only
        when none is, it re-checks the deadline when it fires, so a request
        costs no timer of its own.
        """
        if self.header_timeout > 0:
            loop = asyncio.get_running_loop()
            self._deadline = loop.time() + self.header_timeout
            if self._timer is None:
                self._timer = loop.call_at(self._deadline, self._timed_out)

    def _disarm(self) -> None:
        """Stop timing: the head has arrived (the timer, if any, lapses)."""
        self._deadline = None

    def _cancel_timer(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _h11_base() -> type[Any]:
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    read = (h11.IDLE, h11.DONE)

    class _H11(_HeadLimit, H11Protocol):
        def _request_read(self) -> bool:
            return self.conn.their_state in read

    return _H11


def _httptools_base() -> type[Any]:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class _HttpTools(_HeadLimit, HttpToolsProtocol):
        _message_read = False

        def _started_request(self) -> None:
            self._message_read = False

        def on_message_complete(self) -> None:
            self._message_read = True
            super().on_message_complete()

        def _request_read(self) -> bool:
            return self._message_read

    return _HttpTools


def default_parser() -> Parser:
    """
    The parser uvicorn's ``auto`` picks: httptools when installed, else h11.

    .. versionadded:: 0.1.0
    """
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


def limited_protocol(
    parser: Parser,
    *,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
) -> type[asyncio.Protocol]:
    """
    Return uvicorn's *parser* protocol with the request head bounded.

    Pass it as uvicorn's ``http`` setting. A head longer than
    *max_header_bytes* gets 431; a head not received *header_timeout*
    seconds after the connection opened (or after its first byte, for the
    later requests of a kept-alive connection) gets 408; 0 disables the
    timeout. With h11, also set uvicorn's ``h11_max_incomplete_event_size``
    to at least *max_header_bytes*, or h11 refuses smaller heads itself.

    Raises:
        ValueError: an unknown *parser* or a limit below 1 byte.

    .. versionadded:: 0.1.0
    """
    if max_header_bytes < 1:
        msg = f"max_header_bytes must be at least 1, not {max_header_bytes}"
        raise ValueError(msg)
    if not header_timeout >= 0:
        msg = f"header_timeout must be zero or more, not {header_timeout}"
        raise ValueError(msg)
    if parser == "h11":
        base = _h11_base()
    elif parser == "httptools":
        base = _httptools_base()
    else:
        msg = f"parser must be h11 or httptools, not {parser!r}"
        raise ValueError(msg)
    limited: type[asyncio.Protocol] = type(
        f"Limited{base.__name__.lstrip('_')}Protocol",
        (base,),
        {"max_header_bytes": max_header_bytes, "header_timeout": header_timeout},
    )
    return limited
