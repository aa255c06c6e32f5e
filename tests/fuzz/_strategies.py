"""
Hypothesis strategies: what a client may send (`Probe`) and what an app or
upstream may answer (`Reply`), edge values first.

JSON is assembled from byte fragments, so that documents can hold what
``json.dumps`` cannot write or Python cannot read back: nesting thousands
deep, integers of thousands of digits, lone surrogates, invalid UTF-8.
"""

from __future__ import annotations

import json
from typing import Literal

import attrs
from hypothesis import strategies as st

from tests.fuzz._backend import ECHO, Reply, short_bytes

#: The tenant's token budget per minute.
BUDGET = 100_000
#: The models the tenant may use.
ALLOWED = ("toy-1", "toy-2")
#: The endpoints that take a model.
MODEL_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
#: A marker for a member left out of a document.
ABSENT = b""

Auth = Literal[
    "bearer",
    "lower-bearer",
    "x-api-key",
    "missing",
    "wrong",
    "key-then-wrong",
    "wrong-then-key",
    "key-twice",
    "wrong-bearer-and-x-api-key",
]
#: The auth forms that carry the tenant's key in one header or another.
KEYED: frozenset[str] = frozenset(
    {
        "bearer",
        "lower-bearer",
        "x-api-key",
        "key-then-wrong",
        "wrong-then-key",
        "key-twice",
        "wrong-bearer-and-x-api-key",
    }
)
#: The auth forms with two ``Authorization`` headers.
DUPLICATE_AUTH: frozenset[str] = frozenset(
    {"key-then-wrong", "wrong-then-key", "key-twice"}
)


@attrs.frozen
class Probe:
    """
    One request: *auth* says how the tenant's key is sent (the harness
    fills it in); *max_tokens* is the value sent, if any.
    """

    method: str
    target: str
    auth: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = attrs.field(repr=short_bytes)
    max_tokens: object = None

    @property
    def keyed(self) -> bool:
        """The request carries the tenant's key."""
        return self.auth in KEYED

    @property
    def takes_model(self) -> bool:
        """A POST to an endpoint that takes a model."""
        return self.method == "POST" and self.target in MODEL_PATHS


def nested(depth: int, core: bytes = b"1234567890123456789") -> bytes:
    """*core* inside *depth* JSON arrays."""
    return b"[" * depth + core + b"]" * depth


DEEP_DEPTHS = st.sampled_from([2, 968, 5000])
DIGITS = st.sampled_from([b"1234567890123456789", b"9" * 40, b"7" * 4301])

MODELS = st.one_of(
    st.sampled_from(
        [
            b'"toy-1"',
            b'"toy-2"',
            b'"gpt-4o"',
            ABSENT,
            b"null",
            b"7",
            b'["toy-1"]',
            b'{"id":"toy-1"}',
            b'""',
            b'"' + b"m" * 300 + b'"',
            b'"\\udc00"',
            b'"toy-1\\u0000"',
        ]
    ),
    st.builds(nested, DEEP_DEPTHS, DIGITS),
)

MAX_TOKENS: st.SearchStrategy[object] = st.sampled_from(
    [
        None,
        0,
        1,
        16,
        512,
        BUDGET - 100,
        BUDGET,
        BUDGET + 1,
        50_000,
        2**31,
        2**53 + 1,
        2**63,
        2**64,
        -1,
        1.5,
        "10",
        True,
        [],
    ]
)

STREAM = st.sampled_from([ABSENT, b"true", b"false", b'"yes"', b"null"])
TEXT = st.one_of(
    st.sampled_from(
        [
            b'"one two three"',
            b'""',
            b'"\\udc00"',
            b'"\\ud800x"',
            b'"\xff\xfe"',
            b"[1,2,3]",
        ]
    ),
    st.text(max_size=40).map(lambda s: json.dumps(s).encode()),
    st.builds(nested, DEEP_DEPTHS, st.just(b'"x"')),
)
EXTRA = st.sampled_from(
    [
        ABSENT,
        b'"n":' + b"7" * 4301,
        b'"n":' + b"1234567890123456789",
        b'"deep":' + nested(5000, b"0"),
        b'"stream_options":{"include_usage":true}',
        b'"stream_options":7',
        b'"user":"u"',
    ]
)


def _object(members: list[tuple[str, bytes]]) -> bytes:
    inner = b",".join(json.dumps(k).encode() + b":" + v for k, v in members if v)
    return b"{" + inner + b"}"


def _max_tokens_fragment(value: object) -> bytes:
    return ABSENT if value is None else json.dumps(value).encode()


@st.composite
def json_bodies(draw: st.DrawFn, path: str) -> tuple[bytes, object]:
    """An OpenAI request body for *path* (and its ``max_tokens``)."""
    model = draw(MODELS)
    max_tokens = draw(MAX_TOKENS)
    members = [("model", model)]
    if path.endswith("/chat/completions"):
        message = _object([("role", b'"user"'), ("content", draw(TEXT))])
        members.append(("messages", b"[" + message + b"]"))
    elif path.endswith("/completions"):
        members.append(("prompt", draw(TEXT)))
    else:
        members.append(("input", draw(TEXT)))
    members += [
        ("max_tokens", _max_tokens_fragment(max_tokens)),
        ("stream", draw(STREAM)),
    ]
    body = _object(members)
    extra = draw(EXTRA)
    if extra:
        body = body[:-1] + (b"," if len(body) > 2 else b"") + extra + b"}"
    return body, max_tokens


ODD_BODIES = st.sampled_from(
    [
        b"",
        b"hello",
        b"[]",
        b"null",
        b'{"model": "toy-1"',
        b'{"model":"toy-1","messages":[{"role":"user","content":"\xc3\x28"}]}',
        nested(5000, b"0"),
        b"\xef\xbb\xbf" + b'{"model":"toy-1","prompt":"x"}',
        b'{"model":"toy-1","prompt":"x"} trailing',
        b'{"model":"toy-1","model":"gpt-4o","prompt":"x"}',
    ]
)

ODD_PATHS = st.sampled_from(
    [
        "/",
        "/v1/unknown",
        "/v1/chat/completions/",
        "/v1/models;x=1",
        "/v1/..%5Cadmin",
        "/v1/chat/completions/../../admin",
        "/v1/%2e%2e/admin",
        "/v1/models?api_key=zc-fuzz",
    ]
)


@st.composite
def probes(draw: st.DrawFn) -> Probe:
    """One request: path, method, auth form, headers and body."""
    kind = draw(st.sampled_from(["model", "model", "model", "models", "odd"]))
    max_tokens: object = None
    if kind == "model":
        target = draw(st.sampled_from(MODEL_PATHS))
        method = draw(st.sampled_from(["POST", "POST", "POST", "GET"]))
        if draw(st.integers(0, 5)):
            body, max_tokens = draw(json_bodies(target))
        else:
            body = draw(ODD_BODIES)
    elif kind == "models":
        target, method, body = "/v1/models", "GET", b""
    else:
        target = draw(ODD_PATHS)
        method = draw(st.sampled_from(["GET", "POST"]))
        body = draw(
            st.one_of(
                ODD_BODIES, json_bodies("/v1/chat/completions").map(lambda b: b[0])
            )
        )
    auth = draw(
        st.sampled_from(
            ["bearer"] * 6
            + ["x-api-key", "lower-bearer", "missing", "wrong"]
            + sorted(DUPLICATE_AUTH)
            + ["wrong-bearer-and-x-api-key"]
        )
    )
    headers: list[tuple[str, str]] = []
    content_type = draw(
        st.sampled_from(
            [
                "application/json",
                "application/json",
                None,
                "text/plain",
                "application/json; charset=utf-16",
                "multipart/form-data; boundary=x",
            ]
        )
    )
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    request_id = draw(st.sampled_from([None, "client-correlation-1", "x" * 300, "a b"]))
    if request_id is not None:
        headers.append(("X-Request-Id", request_id))
    return Probe(method, target, auth, tuple(headers), body, max_tokens)


# -- replies -----------------------------------------------------------------

USAGE_NUMBERS = st.sampled_from(
    [
        b"0",
        b"3",
        b"5",
        b"1000",
        b"2147483648",
        b"9007199254740993",
        b"9223372036854775807",
        b"9223372036854775808",
        b"18446744073709551616",
        b"1" + b"0" * 30,
        b"-1",
        b"1.5",
        b"1e30",
        b"NaN",
        b"Infinity",
        b'"10"',
        b"null",
        b"true",
        b"{}",
    ]
)


@st.composite
def usages(draw: st.DrawFn) -> bytes:
    """A ``usage`` value: counts of every kind, or something else entirely."""
    shape = draw(st.sampled_from(["counts", "counts", "counts", "odd"]))
    if shape == "odd":
        return draw(
            st.sampled_from(
                [
                    b"null",
                    b"[]",
                    b'"lots"',
                    b"7",
                    nested(968),
                    b'{"prompt_tokens":{"a":[1]}}',
                ]
            )
        )
    prompt, completion = draw(USAGE_NUMBERS), draw(USAGE_NUMBERS)
    return b'{"prompt_tokens":' + prompt + b',"completion_tokens":' + completion + b"}"


_CHOICES = b'"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]'


@st.composite
def json_templates(draw: st.DrawFn) -> bytes:
    """A chat completion body, possibly odd."""
    extra = draw(
        st.sampled_from(
            [
                b"",
                b'"echo":' + ECHO + b",",
                b'"model":' + nested(968) + b",",
                b'"model":' + nested(5000, b"0") + b",",
                b'"pad":"' + b" " * ((1 << 20) + 7) + b'",',
                b'"n":' + b"7" * 4301 + b",",
            ]
        )
    )
    usage = draw(st.one_of(st.just(ABSENT), usages()))
    tail = b',"usage":' + usage if usage else b""
    body = b'{"id":"c1","object":"chat.completion",' + extra + _CHOICES + tail + b"}"
    if draw(st.integers(0, 9)) == 0:
        body = body[: len(body) // 2]
    return body


def _event(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


@st.composite
def sse_templates(draw: st.DrawFn) -> bytes:
    """A server-sent event stream, with or without usage, possibly broken."""
    chunk = b'{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}'
    events = [_event(chunk)] * draw(st.integers(0, 3))
    if draw(st.booleans()):
        usage = draw(usages())
        events.append(_event(b'{"id":"c1","choices":[],"usage":' + usage + b"}"))
    events += draw(
        st.lists(
            st.sampled_from(
                [
                    b"data: {broken\n\n",
                    b"data: \xff\xfe\n\n",
                    b": comment\r\n\r\n",
                    _event(b'{"usage":' + nested(968) + b"}"),
                    b"data: [DONE]",
                ]
            ),
            max_size=2,
        )
    )
    if draw(st.booleans()):
        events.append(_event(b"[DONE]"))
    return b"".join(events)


@st.composite
def replies(draw: st.DrawFn) -> Reply:
    """What the app or upstream answers."""
    stream = draw(st.booleans())
    template = draw(sse_templates() if stream else json_templates())
    natural = b"text/event-stream" if stream else b"application/json"
    content_type = draw(
        st.sampled_from(
            [
                natural,
                natural,
                natural,
                None,
                b"text/plain",
                b"application/json" if stream else b"text/event-stream",
            ]
        )
    )
    status = draw(st.sampled_from([200, 200, 200, 201, 400, 404, 500]))
    return Reply(
        status,
        content_type,
        template,
        parts=draw(st.integers(1, 4)),
        failure=draw(st.sampled_from(["none", "none", "none", "before", "mid"])),
        report=draw(st.integers(0, 5)) == 0,
    )
