"""
Bounded JSON parsing: parse_json returns a value or raises ValueError, on any input.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zerfoo_cloud.http._json import (
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    MAX_JSON_NUMBER_CHARS,
    parse_json,
)

BIG = b"1234567890123456789"


def _nested(depth: int, inner: bytes = b"1", opener: bytes = b"[") -> bytes:
    closer = b"]" if opener == b"[" else b"}"
    if opener == b"{":
        return b'{"a":' * depth + inner + closer * depth
    return opener * depth + inner + closer * depth


def _depth(value: Any) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


@pytest.mark.parametrize("depth", [968, 5000, 100_000])
@pytest.mark.parametrize("inner", [b"1", BIG, b'"\\udc00"', b"NaN"])
def test_deep_nesting_is_a_value_error_never_a_recursion_error(
    depth: int, inner: bytes
) -> None:
    """Nesting past the limit raises ValueError on both the fast and the exact path."""
    with pytest.raises(ValueError, match="nested"):
        parse_json(_nested(depth, inner))


@pytest.mark.parametrize("opener", [b"[", b"{"])
@pytest.mark.parametrize("inner", [b"1", BIG, b"NaN"])
def test_depth_at_the_limit_and_past_it(opener: bytes, inner: bytes) -> None:
    """MAX_JSON_DEPTH levels parse, one more does not (arrays, objects, both paths)."""
    doc = parse_json(_nested(MAX_JSON_DEPTH, inner, opener))
    assert _depth(doc) == MAX_JSON_DEPTH
    with pytest.raises(ValueError, match="nested"):
        parse_json(_nested(MAX_JSON_DEPTH + 1, inner, opener))


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    """Brackets, quotes and backslashes inside strings are text, not nesting."""
    text = '[[[{{{ \\" \\\\" ]]] }}'
    doc = [text * 50] * 3
    assert parse_json(json.dumps(doc).encode()) == doc
    # Each level of _depth_list holds an object: one level more.
    deep = json.dumps(_depth_list(MAX_JSON_DEPTH - 1, text * 20))
    assert _depth(parse_json(deep.encode())) == MAX_JSON_DEPTH


def _depth_list(depth: int, leaf: str) -> Any:
    value: Any = leaf
    for _ in range(depth):
        value = [value, "[" * 3, {"k": "{\\"}]
    return value


def test_number_length_at_the_limit_and_past_it() -> None:
    """Integers stay exact up to MAX_JSON_NUMBER_CHARS characters; longer is refused."""
    exact = int("9" * MAX_JSON_NUMBER_CHARS)
    assert parse_json(b"[%d]" % exact) == [exact]
    assert parse_json(b"-" + b"9" * (MAX_JSON_NUMBER_CHARS - 1)) == -int(
        "9" * (MAX_JSON_NUMBER_CHARS - 1)
    )
    for data in (
        b"9" * (MAX_JSON_NUMBER_CHARS + 1),
        b'{"max_tokens": ' + b"1" * 4301 + b"}",
        b"0." + b"1" * MAX_JSON_NUMBER_CHARS,
    ):
        with pytest.raises(ValueError, match="number"):
            parse_json(data)


def test_size_at_the_limit_and_past_it() -> None:
    """Documents up to MAX_JSON_BYTES parse; one byte more is refused unread."""
    at_limit = b"1" + b" " * (MAX_JSON_BYTES - 1)
    assert parse_json(at_limit) == 1
    with pytest.raises(ValueError, match="bytes"):
        parse_json(at_limit + b" ")


@pytest.mark.parametrize(
    "data",
    [
        b'"\\udc00"',
        b'{"model": "m", "stream": true, "x": "\\ud800"}',
        b'["\\ud83d"]',
        b'{"\\udfff": 1}',
        b'"\xed\xb0\x80"',  # a surrogate encoded as UTF-8 bytes
        '"\udc00"'.encode("utf-16", "surrogatepass"),
    ],
)
def test_lone_surrogates_are_refused(data: bytes) -> None:
    """Text that cannot be encoded as UTF-8 again is not JSON parse_json returns."""
    with pytest.raises(ValueError):
        parse_json(data)


def test_surrogate_pairs_and_escaped_backslashes_are_text() -> None:
    """A valid pair, and a backslash followed by 'udc00', are ordinary text."""
    assert parse_json(b'"\\ud83d\\ude00"') == "\U0001f600"
    assert parse_json(b'["\\\\udc00", ' + BIG + b"]") == ["\\udc00", int(BIG)]


@given(st.binary(max_size=200))
def test_any_bytes_give_a_value_or_value_error(data: bytes) -> None:
    """On arbitrary bytes parse_json returns or raises ValueError, nothing else."""
    with contextlib.suppress(ValueError):
        parse_json(data)


_structural = st.lists(
    st.sampled_from(
        [b"[", b"]", b"{", b"}", b'"', b"\\", b",", b":", b"1", BIG, b"\\u"]
    ),
    max_size=300,
)


@given(_structural)
def test_any_bracket_soup_gives_a_value_or_value_error(parts: list[bytes]) -> None:
    """Structure-heavy input (deep, unbalanced, escaped) only ever raises ValueError."""
    with contextlib.suppress(ValueError):
        parse_json(b"".join(parts))


_text = st.text(st.sampled_from('ab[]{}"\\/'), max_size=6)
_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**80), 2**80) | _text,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3)
    ),
    max_leaves=40,
)


@given(_values, st.integers(MAX_JSON_DEPTH - 3, MAX_JSON_DEPTH + 1))
def test_depth_limit_is_exact_for_any_document(value: Any, wrap: int) -> None:
    """A document is refused exactly when it nests deeper than MAX_JSON_DEPTH."""
    for _ in range(wrap):
        value = [value]
    data = json.dumps(value).encode()
    if _depth(value) <= MAX_JSON_DEPTH:
        assert parse_json(data) == value
    else:
        with pytest.raises(ValueError, match="nested"):
            parse_json(data)
