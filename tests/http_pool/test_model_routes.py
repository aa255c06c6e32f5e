"""
The ``--upstream`` specs and the model lists replicas publish, read without
a server: odd model names, duplicate URLs, and hostile model lists.
"""

from __future__ import annotations

import json

import pytest

from zerfoo_cloud._pool_options import PoolOptions
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.http._model_routes import (
    MAX_MODELS_PER_REPLICA,
    UpstreamSpec,
    model_list_body,
    parse_model_list,
    parse_upstreams,
)
from zerfoo_cloud.http._models import MAX_MODEL_LIST_BYTES, filter_model_list


def test_bare_urls_discover_and_model_urls_name_their_model() -> None:
    specs = parse_upstreams(
        [
            "http://a:8000",
            "llama=http://b:8000/v1",
            "qwen=http://b:8000/v1/",
            "meta-llama/Llama-3.1-8B:fp8=https://c",
            "http://a:8000/",
        ]
    )
    assert specs == [
        UpstreamSpec("http://a:8000", frozenset(), discover=True),
        UpstreamSpec("http://b:8000/v1", frozenset({"llama", "qwen"}), discover=False),
        UpstreamSpec(
            "https://c", frozenset({"meta-llama/Llama-3.1-8B:fp8"}), discover=False
        ),
    ]


def test_a_model_may_hold_an_equals_sign_and_a_url_a_query_never() -> None:
    assert parse_upstreams(["a=b=http://h"])[0].models == {"a=b"}
    with pytest.raises(InvalidConfigError):
        parse_upstreams(["m=http://h/?x=1"])


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "llama",
        "=http://h",
        "has space=http://h",
        "tab\there=http://h",
        "caf\u00e9=http://h",
        "nul\x00=http://h",
        "m" * 257 + "=http://h",
        "m=ftp://h",
        "m=http://",
        "m=http://user:pw@h",
        "ftp://h",
    ],
)
def test_odd_specs_are_refused_with_the_option_named(spec: str) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        parse_upstreams([spec])
    assert caught.value.field in {"upstream", "base_url"}


def test_no_spec_is_refused() -> None:
    with pytest.raises(InvalidConfigError):
        parse_upstreams([])


def test_a_model_list_keeps_valid_entries_once_each() -> None:
    body = json.dumps(
        {
            "object": "list",
            "data": [
                {"id": "a", "created": 5, "owned_by": "vllm", "root": "/weights"},
                {"id": "a", "owned_by": "second"},
                {"id": 7},
                {"id": ""},
                {"id": "x y"},
                {"id": "caf\u00e9"},
                "b",
                None,
                {"id": "b", "created": True, "owned_by": {"deep": [1]}},
            ],
        }
    ).encode()
    assert parse_model_list(body) == {
        "a": {"created": 5, "owned_by": "vllm"},
        "b": {},
    }


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"data": {}}',
        b'{"object": "list"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"data": [' + b"[" * 5000 + b"]" * 5000 + b"]}",
        b'{"data": []}' + b" " * MAX_MODEL_LIST_BYTES,
        b'{"data": ["\\udc00"]}',
    ],
    ids=lambda b: repr(b[:20]),
)
def test_a_hostile_model_list_is_refused_whole(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_model_list(body)


def test_a_huge_model_list_keeps_at_most_the_cap() -> None:
    data = [{"id": f"m{i}"} for i in range(MAX_MODELS_PER_REPLICA + 50)]
    models = parse_model_list(json.dumps({"data": data}).encode())
    assert len(models) == MAX_MODELS_PER_REPLICA


def test_the_pool_list_is_openai_shaped_and_sorted() -> None:
    body = model_list_body({"b": {}, "a": {"owned_by": "vllm"}})
    assert body == {
        "object": "list",
        "data": [
            {"id": "a", "object": "model", "created": 0, "owned_by": "vllm"},
            {"id": "b", "object": "model", "created": 0, "owned_by": "upstream"},
        ],
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("eject_after", 0),
        ("eject_cooldown", 0),
        ("probe_interval", -1),
        ("probe_timeout", float("nan")),
        ("discovery_interval", 0),
    ],
)
def test_pool_options_refuse_values_out_of_range(field: str, value: float) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        PoolOptions(**{field: value})  # type: ignore[arg-type]
    assert caught.value.field == field


def _padded_list(size: int) -> bytes:
    body = b'{"data": [{"id": "m"}]}'
    return body + b" " * (size - len(body))


def test_a_model_list_at_the_byte_limit_is_read_and_one_byte_past_it_is_not() -> None:
    """Both readers of a model list (the pool's and the tenant filter) share
    one limit: at `MAX_MODEL_LIST_BYTES` the list is read, one byte past it
    it is refused."""
    at_limit = _padded_list(MAX_MODEL_LIST_BYTES)
    assert list(parse_model_list(at_limit)) == ["m"]
    assert filter_model_list(at_limit, lambda _: True) is not None
    past = _padded_list(MAX_MODEL_LIST_BYTES + 1)
    with pytest.raises(ValueError, match="over"):
        parse_model_list(past)
    assert filter_model_list(past, lambda _: True) is None


def test_the_tenant_filter_reads_lists_with_the_bounded_parser() -> None:
    """A list the bounded parser refuses (a lone surrogate, nesting past its
    depth) cannot be filtered, as the pool cannot read it."""
    for body in (b'{"data": ["\\udc00"]}', b'{"data": [' * 200 + b"]}" * 200):
        assert filter_model_list(body, lambda _: True) is None
