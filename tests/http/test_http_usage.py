"""
Usage extraction: the SSE parser, the JSON scanner, the usage slot.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zerfoo_cloud import InvalidConfigError, report_usage
from zerfoo_cloud.http._json import parse_json
from zerfoo_cloud.http._json_usage import JSONUsageScanner
from zerfoo_cloud.http._response_meter import JSON_BUFFER_LIMIT, ResponseMeter
from zerfoo_cloud.http._sse_usage import SSEUsageParser
from zerfoo_cloud.http._usage import USAGE_KEY, Usage, UsageSlot, usage_from_mapping

# -- strategies ---------------------------------------------------------------

_text = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"),
    max_size=12,
)
_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    _text,
    st.sampled_from(['"usage": {"prompt_tokens": 9}', 'x\\"usage\\":1', "\\", '"']),
)
_json_value = st.recursive(
    _json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["usage", "a", "b", "usag", "choices"]), inner, max_size=3
        ),
    ),
    max_leaves=8,
)
_usage = st.tuples(st.integers(0, 10**6), st.integers(0, 10**6))


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = []
    last = 0
    for point in points:
        pieces.append(data[last:point])
        last = point
    pieces.append(data[last:])
    return pieces


def _usage_doc(usage: tuple[int, int]) -> dict[str, int]:
    return {
        "prompt_tokens": usage[0],
        "completion_tokens": usage[1],
        "total_tokens": sum(usage),
    }


@st.composite
def _sse_stream(
    draw: st.DrawFn,
) -> tuple[list[bytes], tuple[int, int] | None, int, int]:
    """Blocks of a valid stream, the expected usage, content events, usage-only index."""
    blocks: list[bytes] = []
    expected: tuple[int, int] | None = None
    content = 0
    usage_only = -1
    prev_end = ""
    count = draw(st.integers(0, 6))
    final = draw(st.none() | _usage)
    for i in range(count + 1):
        is_final = i == count
        if is_final:
            if final is None:
                break
            obj: Any = {"choices": [], "usage": _usage_doc(final)}
            expected = final
            usage_only = len(blocks)
        else:
            obj = {"choices": [{"delta": {"content": draw(_text)}}]}
            if draw(st.booleans()):
                obj["usage"] = None
            obj["extra"] = draw(_json_value)
            content += 1
        data = json.dumps(obj, indent=draw(st.sampled_from([None, 1])))
        lines = []
        if draw(st.booleans()):
            lines.append(":" + draw(_text))
        if draw(st.booleans()):
            lines.append("event: message")
        space = draw(st.sampled_from(["data: ", "data:"]))
        lines.extend(space + part for part in data.split("\n"))
        if draw(st.booleans()):
            lines.append(": trailing comment")
        lines.append("")  # the blank line that ends the block
        raw = ""
        for line in lines:
            end = draw(st.sampled_from(["\r\n", "\n", "\r"]))
            if prev_end == "\r" and not line and end == "\n":
                end = "\r"  # "\r" + "\n" would read as one CRLF
            raw += line + end
            prev_end = end
        blocks.append(raw.encode())
    blocks.append(b"data: [DONE]\n\n")
    return blocks, expected, content, usage_only


# -- SSE ----------------------------------------------------------------------


@given(_sse_stream(), st.lists(st.integers(0, 10**6), max_size=12))
def test_sse_parser_reads_usage_from_any_chunking(
    stream: tuple[list[bytes], tuple[int, int] | None, int, int], cuts: list[int]
) -> None:
    """The SSE parser finds the usage and counts content events however the stream is split."""
    blocks, expected, content, _ = stream
    data = b"".join(blocks)
    parser = SSEUsageParser()
    out = b"".join(parser.feed(piece) for piece in _split(data, cuts))
    out += parser.close()
    assert out == data
    assert parser.usage == expected
    assert parser.events == content


@given(_sse_stream(), st.lists(st.integers(0, 10**6), max_size=12))
def test_sse_parser_drops_exactly_the_usage_only_event(
    stream: tuple[list[bytes], tuple[int, int] | None, int, int], cuts: list[int]
) -> None:
    """With drop_usage_only the output is the stream without its usage-only block."""
    blocks, expected, _, usage_only = stream
    data = b"".join(blocks)
    parser = SSEUsageParser(drop_usage_only=True)
    out = b"".join(parser.feed(piece) for piece in _split(data, cuts))
    out += parser.close()
    kept = [b for i, b in enumerate(blocks) if i != usage_only]
    assert parser.usage == expected
    assert out == b"".join(kept)


def test_sse_parser_keeps_a_split_crlf_inside_a_held_event() -> None:
    """The LF of a CRLF split inside an event being held back is passed on with it."""
    parser = SSEUsageParser(drop_usage_only=True)
    out = parser.feed(b"data: {}\r")
    out += parser.feed(b"\n\r\ndata: [DONE]\r\n\r\n")
    assert out == b"data: {}\r\n\r\ndata: [DONE]\r\n\r\n"


def test_sse_parser_joins_multi_line_data() -> None:
    """Several data lines of one event are joined with a newline before decoding."""
    parser = SSEUsageParser()
    parser.feed(b'data: {"usage":\ndata: {"prompt_tokens": 3,\n')
    parser.feed(b'data:  "completion_tokens": 4}, "choices": []}\n\n')
    assert parser.usage == (3, 4)
    assert parser.events == 0


def test_sse_parser_skips_done_null_usage_and_bad_json() -> None:
    """[DONE], null usages and undecodable data count as content, not usage."""
    parser = SSEUsageParser()
    parser.feed(b'data: {"usage": null, "choices": [1]}\n\ndata: {"usage": nope}\n\n')
    parser.feed(b"data\n\n: only a comment\n\ndata: [DONE]\n\n")
    assert parser.usage is None
    assert parser.events == 3


def test_sse_parser_reads_an_unterminated_last_event_at_close() -> None:
    """A last event without its blank line still gives its usage at close."""
    parser = SSEUsageParser(drop_usage_only=True)
    tail = (
        b'data: {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}'
    )
    assert parser.feed(tail) == b""
    assert parser.close() == tail
    assert parser.usage == (1, 2)


def test_sse_parser_keeps_usage_in_a_content_chunk() -> None:
    """A usage carried by a chunk with choices is read and the chunk kept."""
    parser = SSEUsageParser(drop_usage_only=True)
    event = b'data: {"choices": [{"delta": {}}], "usage": {"prompt_tokens": 5, "completion_tokens": 6}}\n\n'
    assert parser.feed(event) == event
    assert parser.usage == (5, 6)


def test_sse_parser_drops_split_crlf_after_a_dropped_event() -> None:
    """The LF of a CRLF blank line split from its dropped event is dropped too."""
    parser = SSEUsageParser(drop_usage_only=True)
    out = parser.feed(b'data: {"choices": [], "usage": {"prompt_tokens": 1}}\r\n\r')
    out += parser.feed(b"\ndata: [DONE]\r\n\r\n")
    assert out == b"data: [DONE]\r\n\r\n"


# -- JSON ---------------------------------------------------------------------


@given(
    st.dictionaries(
        st.sampled_from(["id", "usag", "choices", "model", "x"]),
        _json_value,
        max_size=4,
    ),
    _usage,
    st.integers(0, 5),
    st.sampled_from([None, 0, 2]),
    st.lists(st.integers(0, 10**6), max_size=10),
)
def test_json_scanner_finds_top_level_usage_anywhere(
    doc: dict[str, Any],
    usage: tuple[int, int],
    position: int,
    indent: int | None,
    cuts: list[int],
) -> None:
    """The scanner finds the top-level usage, not nested decoys, however the body is split."""
    items = list(doc.items())
    items.insert(min(position, len(items)), ("usage", _usage_doc(usage)))
    data = json.dumps(dict(items), indent=indent).encode()
    scanner = JSONUsageScanner()
    for piece in _split(data, cuts):
        scanner.feed(piece)
    assert scanner.usage == usage


@given(_json_value, st.lists(st.integers(0, 10**6), max_size=6))
def test_json_scanner_finds_nothing_without_top_level_usage(
    value: Any, cuts: list[int]
) -> None:
    """Documents without a top-level usage give none, whatever they nest."""
    data = json.dumps({"data": value, "usage": None}).encode()
    scanner = JSONUsageScanner()
    for piece in _split(data, cuts):
        scanner.feed(piece)
    assert scanner.usage is None


def test_json_scanner_ignores_arrays_and_huge_usage() -> None:
    """A top-level array has no usage, and an oversized usage value is dropped."""
    scanner = JSONUsageScanner()
    scanner.feed(b'[{"usage": {"prompt_tokens": 1}}]')
    assert scanner.usage is None
    scanner = JSONUsageScanner()
    scanner.feed(b'{"usage": {"pad": "' + b"x" * (1 << 17) + b'"}}')
    assert scanner.usage is None


def test_response_meter_switches_to_scanner_past_the_buffer_limit() -> None:
    """A JSON body over JSON_BUFFER_LIMIT is scanned, not kept, and still metered."""
    meter = ResponseMeter()
    meter.start("application/json; charset=utf-8")
    pad = json.dumps({"data": "x" * (JSON_BUFFER_LIMIT + 10)}).encode()[1:-1]
    body = b'{"usage": {"prompt_tokens": 7, "completion_tokens": 8}, ' + pad + b"}"
    for i in range(0, len(body), 65536):
        piece = body[i : i + 65536]
        assert meter.feed(piece) is piece
    assert meter.close() == b""
    assert meter._scanner is not None
    assert meter._parts == []
    assert meter.usage() == Usage(7, 8, "json")


def test_response_meter_other_content_types() -> None:
    """Bodies that are neither JSON nor SSE, or malformed JSON, show no usage."""
    for content_type in (None, b"text/plain", "application/octet-stream"):
        meter = ResponseMeter()
        meter.start(content_type)
        meter.feed(b'{"usage": {"prompt_tokens": 1}}')
        assert meter.usage() is None
        assert not meter.streaming
    meter = ResponseMeter()
    meter.start("application/problem+json")
    meter.feed(b"{not json")
    assert meter.usage() is None
    meter = ResponseMeter()
    meter.start("application/json")
    assert meter.usage() is None
    meter.feed(b"[1, 2]")
    assert meter.usage() is None


def test_usage_from_mapping_forms() -> None:
    """Chat, embeddings and responses usages are read; bad ones are not."""
    assert usage_from_mapping({"prompt_tokens": 1, "completion_tokens": 2}) == (1, 2)
    assert usage_from_mapping({"prompt_tokens": 5, "total_tokens": 5}) == (5, 0)
    assert usage_from_mapping({"prompt_tokens": 5}) == (5, 0)
    assert usage_from_mapping({"input_tokens": 3, "output_tokens": 4}) == (3, 4)
    assert usage_from_mapping({"prompt_tokens": -1}) is None
    assert usage_from_mapping({"prompt_tokens": True}) is None
    assert usage_from_mapping({"completion_tokens": 3}) is None
    assert usage_from_mapping([1, 2]) is None
    assert usage_from_mapping(None) is None


# -- the slot -----------------------------------------------------------------


class _Request:
    def __init__(self, **attrs: Any) -> None:
        self.__dict__.update(attrs)


def test_report_usage_reaches_the_slot_through_every_carrier() -> None:
    """report_usage finds the slot in a scope, an environ, or a request object."""
    scope_slot, environ_slot = UsageSlot(), UsageSlot()
    scope = {"type": "http", "state": {USAGE_KEY: scope_slot}}
    environ = {USAGE_KEY: environ_slot}
    assert report_usage(scope, 1, 2)
    assert scope_slot.get() == Usage(1, 2)
    assert report_usage(_Request(scope=scope), 3, 4)
    assert scope_slot.get() == Usage(3, 4)
    assert report_usage(_Request(environ=environ), 5, 6)
    assert environ_slot.get() == Usage(5, 6, "reported")
    assert "reported=True" in repr(environ_slot)


def test_report_usage_without_a_middleware_is_harmless() -> None:
    """Without a slot report_usage returns False; bad counts still raise."""
    assert not report_usage({}, 1, 1)
    assert not report_usage({"state": {}}, 1, 1)
    assert not report_usage(_Request(), 1, 1)
    assert UsageSlot().get() is None
    with pytest.raises(InvalidConfigError) as info:
        report_usage({}, -1, 0)
    assert info.value.field == "prompt_tokens"
    with pytest.raises(InvalidConfigError):
        report_usage({USAGE_KEY: UsageSlot()}, 0, 1.5)  # type: ignore[arg-type]


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(value=_json_values, encoding=st.sampled_from(["utf-8", "utf-16", "utf-8-sig"]))
def test_parse_json_reads_what_json_loads_reads(value: Any, encoding: str) -> None:
    """parse_json() returns what json.loads() returns, huge integers and UTF-16 included."""
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        data = text.encode(encoding)
        assert parse_json(data) == json.loads(data)


@pytest.mark.parametrize(
    "data",
    [
        b"NaN",
        b'{"a": Infinity}',
        b"1e400",
        b"[1, 2",
        b"",
        b"\xff",
        b"-9223372036854775808",
        b"-9223372036854775809",
        b"18446744073709551615",
        b"18446744073709551616",
        b'{"max_tokens": 123456789012345678901234567890}',
    ],
)
def test_parse_json_matches_json_loads_on_odd_input(data: bytes) -> None:
    """parse_json() accepts the non-standard constants and huge numbers json.loads() accepts, as it reads them, and raises ValueError where it does."""
    try:
        expected = json.loads(data)
    except ValueError:
        with pytest.raises(ValueError):
            parse_json(data)
        return
    assert repr(parse_json(data)) == repr(expected)


# -- totality: no response makes usage extraction raise ------------------------

_DEEP_MODEL = b"[" * 968 + b"1234567890123456789" + b"]" * 968


@pytest.mark.parametrize("depth", [968, 5000])
def test_a_deeply_nested_response_shows_no_usage_and_raises_nothing(
    depth: int,
) -> None:
    """The echoed 968-deep model of the issue: no usage, so the reservation is billed."""
    deep = b"[" * depth + b"1234567890123456789" + b"]" * depth
    body = b'{"model": ' + deep + b', "usage": {"prompt_tokens": 1}}'
    meter = ResponseMeter()
    meter.start("application/json")
    assert meter.feed(body) == body
    assert meter.close() == b""
    assert meter.usage() is None
    sse = ResponseMeter()
    sse.start(b"text/event-stream")
    event = b"data: " + body + b"\n\n"
    assert sse.feed(event) == event
    assert sse.close() == b""
    assert sse.usage() is None


def test_a_deep_usage_value_past_the_buffer_limit_raises_nothing() -> None:
    """The incremental scanner reads a deep top-level usage within its limits."""
    usage = b"[" * 30_000 + b"1" + b"]" * 30_000
    scanner = JSONUsageScanner()
    scanner.feed(b'{"usage": ' + usage + b', "x": 1}')
    assert scanner.usage is None
    meter = ResponseMeter()
    meter.start("application/json")
    meter.feed(b" " * JSON_BUFFER_LIMIT + b'{"usage": ' + _DEEP_MODEL + b"}")
    assert meter.usage() is None


def test_a_content_type_outside_latin_1_raises_nothing() -> None:
    """A WSGI app's str header with any character is read, not raised on."""
    meter = ResponseMeter()
    meter.start("application/json; charset=\u2603")
    meter.feed(b'{"usage": {"prompt_tokens": 2, "completion_tokens": 3}}')
    assert meter.usage() == Usage(2, 3, "json")


_hostile_piece = st.sampled_from(
    [
        b"data: ",
        b"data:",
        b"\n",
        b"\r",
        b"\r\n",
        b":",
        b"[",
        b"]",
        b"{",
        b"}",
        b'"',
        b"\\",
        b'"usage"',
        b'"usage":',
        b'"choices":[]',
        b'{"prompt_tokens": 1}',
        b"1234567890123456789",
        b"[DONE]",
        b"\\udc00",
        b"\xff",
        b"NaN",
        b",",
    ]
)


@given(
    pieces=st.lists(st.one_of(_hostile_piece, st.binary(max_size=8)), max_size=60),
    cuts=st.lists(st.integers(0, 10_000), max_size=6),
    content_type=st.sampled_from(
        [b"application/json", b"text/event-stream", b"text/plain", None]
    ),
    drop=st.booleans(),
    scanner=st.booleans(),
)
def test_response_meter_never_raises_on_any_body(
    pieces: list[bytes],
    cuts: list[int],
    content_type: bytes | None,
    drop: bool,
    scanner: bool,
) -> None:
    """Any bytes, cut anywhere, under any content type: usage or None, no exception."""
    body = b"".join(pieces)
    meter = ResponseMeter(drop_usage_only=drop)
    meter.start(content_type)
    if scanner:
        meter.feed(b" " * (JSON_BUFFER_LIMIT + 1))
    for piece in _split(body, cuts):
        meter.feed(piece)
    meter.close()
    usage = meter.usage()
    assert usage is None or usage.total_tokens >= 0
    assert meter.streamed_events >= 0
