"""
The sans-IO policy core: keys, estimates, durations, error mapping.
"""

from __future__ import annotations

import inspect
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import zerfoo_cloud.errors
from zerfoo_cloud import (
    AuditResult,
    CloudError,
    CloudServer,
    InvalidConfigError,
    ModelNotAllowedError,
    RateLimitedError,
    RequestTooLargeError,
    StoreError,
    TenantManager,
    TenantNotFoundError,
    TokenMeter,
    UnauthorizedError,
    billing_middleware,
)
from zerfoo_cloud.http import EXCEPTION_STATUS, detect_interface, format_duration
from zerfoo_cloud.http._policy import (
    PolicyOptions,
    RequestInfo,
    _api_key_from_any,
    api_key_from,
    audit_result,
    error_response,
    estimate_prompt_tokens,
    fallback_usage,
    inspect_request,
    status_for,
)
from zerfoo_cloud.limits import Decision
from zerfoo_cloud.stores.memory import MemoryBillingStore

OPTIONS = PolicyOptions(default_estimate=100, default_max_tokens=50)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-1, "0s"),
        (math.inf, "0s"),
        (0.0004, "1ms"),
        (0.012, "12ms"),
        (0.9991, "1s"),
        (1, "1s"),
        (1.5, "1.5s"),
        (8.64, "8.64s"),
        (59.9999, "1m0s"),
        (360, "6m0s"),
        (61.25, "1m1.25s"),
        (3600, "1h0m0s"),
        (3725.5, "1h2m5.5s"),
    ],
)
def test_format_duration_matches_openai(seconds: float, text: str) -> None:
    """Reset durations use OpenAI's format, rounded up to the millisecond."""
    assert format_duration(seconds) == text


def test_api_key_from_bearer_and_x_api_key() -> None:
    """Bearer (any case) wins over x-api-key; other schemes and blanks give no key."""
    assert api_key_from("Bearer abc", None) == "abc"
    assert api_key_from(b"bearer  abc ", b"other") == "abc"
    assert api_key_from(None, "xyz") == "xyz"
    assert api_key_from("Basic abc", b"xyz") == "xyz"
    assert api_key_from("Basic abc", None) is None
    assert api_key_from("Bearer ", " ") is None
    assert api_key_from(None, None) is None


def test_estimate_prompt_tokens_heuristic() -> None:
    """The estimate is ceil(chars/4) plus per-message, reply and non-text costs."""
    assert estimate_prompt_tokens({}) == 0
    assert estimate_prompt_tokens({"prompt": "abcde"}) == 2
    assert estimate_prompt_tokens({"prompt": ["abcd", "abcd"]}) == 2
    assert estimate_prompt_tokens({"prompt": [1, 2, 3]}) == 3
    assert estimate_prompt_tokens({"input": [[1, 2], [3]]}) == 3
    assert estimate_prompt_tokens({"input": True}) == 0
    messages = [
        {"role": "system", "content": "abcd"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "abcdefgh"}, {"type": "image_url"}],
        },
        "junk",
    ]
    # 12 chars -> 3, 3 messages * 4, 1 image * 85, reply 3
    assert estimate_prompt_tokens({"messages": messages}) == 3 + 12 + 85 + 3
    nested = {"input": [{"role": "user", "content": "abcd"}]}
    assert estimate_prompt_tokens(nested) == 1 + 4


def test_inspect_request_reserves_prompt_and_completion() -> None:
    """The reservation is the prompt estimate plus max_tokens or the default."""
    body = json.dumps({"model": "m", "prompt": "abcdefgh", "max_tokens": 10}).encode()
    info = inspect_request("POST", "/v1/completions", body, OPTIONS)
    assert info == RequestInfo("m", 2, 12, body=body)
    body = json.dumps(
        {"prompt": "abcd", "max_completion_tokens": 7, "max_tokens": 9}
    ).encode()
    assert inspect_request("POST", "/v1/completions", body, OPTIONS).reserve == 8
    body = json.dumps({"model": 3, "prompt": "abcd"}).encode()
    info = inspect_request("POST", "/v1/completions", body, OPTIONS)
    assert (info.model, info.reserve) == ("", 51)
    body = json.dumps({"input": "abcd"}).encode()
    assert inspect_request("POST", "/v1/embeddings", body, OPTIONS).reserve == 1


def test_inspect_request_without_json_uses_the_default_estimate() -> None:
    """Malformed or non-object bodies pass unchanged with the default estimate."""
    for body in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        info = inspect_request("POST", "/v1/chat/completions", body, OPTIONS)
        assert info == RequestInfo(reserve=100, body=body)
    assert inspect_request("GET", "/v1/models", b"", OPTIONS) == RequestInfo()


def test_inspect_request_asks_streams_for_usage() -> None:
    """Streamed completions get include_usage added, unless the client set it."""
    body = {"model": "m", "stream": True, "stream_options": {"x": 1}, "prompt": "é"}
    info = inspect_request(
        "POST", "/v1/completions", json.dumps(body).encode(), OPTIONS
    )
    assert info.stream
    assert info.drop_usage_only
    assert info.rewritten
    assert json.loads(info.body)["stream_options"] == {"x": 1, "include_usage": True}
    asked = {**body, "stream_options": {"include_usage": True}}
    raw = json.dumps(asked).encode()
    info = inspect_request("POST", "/v1/completions", raw, OPTIONS)
    assert (info.stream, info.drop_usage_only, info.body) == (True, False, raw)
    off = PolicyOptions(include_usage=False)
    raw = json.dumps(body).encode()
    assert inspect_request("POST", "/v1/chat/completions", raw, off).body == raw
    assert inspect_request("POST", "/v1/other", raw, OPTIONS).body == raw
    bad = json.dumps({"stream": True, "stream_options": "yes"}).encode()
    info = inspect_request("POST", "/v1/chat/completions", bad, OPTIONS)
    assert json.loads(info.body)["stream_options"] == {"include_usage": True}


def test_policy_options_validate() -> None:
    """Negative or non-integer options raise InvalidConfigError naming the field."""
    for name in ("max_body_bytes", "default_estimate", "default_max_tokens"):
        with pytest.raises(InvalidConfigError) as info:
            PolicyOptions(**{name: -1})  # type: ignore[arg-type]
        assert info.value.field == name
    with pytest.raises(InvalidConfigError):
        PolicyOptions(max_body_bytes=True)


def _cloud_error_classes() -> list[type[BaseException]]:
    return [
        cls
        for _, cls in inspect.getmembers(zerfoo_cloud.errors, inspect.isclass)
        if issubclass(cls, CloudError)
    ]


def test_every_cloud_error_maps_to_a_status() -> None:
    """Every CloudError class resolves along its MRO to a 4xx or 5xx status."""
    classes = _cloud_error_classes()
    assert len(classes) >= 10
    for cls in classes:
        status = next(
            EXCEPTION_STATUS[c][0] for c in cls.__mro__ if c in EXCEPTION_STATUS
        )
        assert 400 <= status < 600


def test_http_errors_map_to_their_statuses() -> None:
    """The HTTP-facing errors get 401, 403, 413, 429, 503 and others 500."""
    cases: list[tuple[BaseException, int]] = [
        (UnauthorizedError("missing"), 401),
        (TenantNotFoundError(None), 401),
        (ModelNotAllowedError("t", "m"), 403),
        (RequestTooLargeError(10, 11), 413),
        (RateLimitedError("t", "tokens", 1.0), 429),
        (StoreError("disk"), 503),
        (InvalidConfigError("x"), 500),
        (ValueError("secret internals"), 500),
    ]
    for exc, status in cases:
        assert status_for(exc)[0] == status
    assert status_for(KeyboardInterrupt())[0] == 500


def test_error_response_shape_and_retry_after() -> None:
    """Errors have OpenAI's shape; 429 carries Retry-After in whole seconds, at least 1."""
    decision = Decision(False, 10, 0, 2.2, 6.0)
    exc = RateLimitedError("t", "requests", 2.2, requests=decision, capacity=10)
    response = error_response(exc, [("x-ratelimit-limit-requests", "10")])
    assert response.status == 429
    headers = dict(response.headers)
    assert headers["retry-after"] == "3"
    assert headers["x-ratelimit-limit-requests"] == "10"
    assert int(headers["content-length"]) == len(response.body)
    error = json.loads(response.body)["error"]
    assert error["type"] == "requests"
    assert error["code"] == "rate_limit_exceeded"
    assert "limit 10" in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (
        dict(error_response(RateLimitedError("t", "concurrency", 0.01)).headers)[
            "retry-after"
        ]
        == "1"
    )
    assert (
        dict(error_response(RateLimitedError("t", "tokens", math.inf)).headers)[
            "retry-after"
        ]
        == "60"
    )
    hidden = json.loads(error_response(ValueError("secret internals")).body)
    assert "secret" not in hidden["error"]["message"]
    assert hidden["error"]["type"] == "server_error"


def test_audit_result_by_status() -> None:
    """Statuses map to success, unauthorized, denied, rate_limited or error."""
    assert audit_result(200) is AuditResult.SUCCESS
    assert audit_result(304) is AuditResult.SUCCESS
    assert audit_result(401) is AuditResult.UNAUTHORIZED
    assert audit_result(403) is AuditResult.DENIED
    assert audit_result(413) is AuditResult.DENIED
    assert audit_result(429) is AuditResult.RATE_LIMITED
    assert audit_result(400) is AuditResult.ERROR
    assert audit_result(500) is AuditResult.ERROR


def test_fallback_usage() -> None:
    """Without reported usage: failures bill nothing, streams one token per event."""
    info = RequestInfo(prompt_tokens=5, reserve=25)
    assert fallback_usage(info, 500, 3).total_tokens == 0
    assert fallback_usage(info, 0, 3).total_tokens == 0
    assert (
        fallback_usage(info, 200, 3).prompt_tokens,
        fallback_usage(info, 200, 3).completion_tokens,
    ) == (5, 3)
    assert fallback_usage(info, 200, 0).completion_tokens == 20


def test_interface_detection() -> None:
    """Coroutine callables are ASGI, other callables WSGI; non-callables are refused."""

    async def asgi(scope: object, receive: object, send: object) -> None: ...

    class ASGIClass:
        async def __call__(
            self, scope: object, receive: object, send: object
        ) -> None: ...

    def wsgi(environ: object, start_response: object) -> list[bytes]:
        return []

    assert detect_interface(asgi) == "asgi"
    assert detect_interface(ASGIClass()) == "asgi"
    assert detect_interface(wsgi) == "wsgi"
    with pytest.raises(InvalidConfigError):
        detect_interface(42)
    meter = TokenMeter(MemoryBillingStore())
    with pytest.raises(InvalidConfigError) as info:
        CloudServer(wsgi, TenantManager(), meter, interface="cgi")  # type: ignore[arg-type]
    assert info.value.field == "interface"
    server = CloudServer(wsgi, TenantManager(), meter, interface="asgi")
    assert server.interface == "asgi"
    assert server.meter is meter
    wrap = billing_middleware(lambda event: None, interface="wsgi")  # type: ignore[arg-type]
    assert type(wrap(asgi)).__name__ == "WSGIBillingMiddleware"


@given(
    authorization=st.one_of(
        st.none(),
        st.binary(max_size=20),
        st.builds(
            lambda head, key: head + key,
            st.sampled_from([b"Bearer ", b"bearer ", b" Bearer ", b"Bearer", b""]),
            st.binary(max_size=20),
        ),
    ),
    x_api_key=st.one_of(st.none(), st.binary(max_size=10)),
)
def test_api_key_fast_path_agrees_with_the_general_one(
    authorization: bytes | None, x_api_key: bytes | None
) -> None:
    """The shortcut for `Bearer <key>` finds the key the general parser finds, in bytes (ASGI) and text (WSGI)."""
    assert api_key_from(authorization, x_api_key) == _api_key_from_any(
        authorization, x_api_key
    )
    text = None if authorization is None else authorization.decode("latin-1")
    assert api_key_from(text, x_api_key) == _api_key_from_any(text, x_api_key)
