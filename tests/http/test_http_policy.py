"""
The sans-IO policy core: keys, estimates, durations, error mapping.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zerfoo_cloud import (
    AuditResult,
    CloudServer,
    InvalidConfigError,
    InvalidRequestError,
    ModelNotAllowedError,
    RateLimitedError,
    RequestOverBudgetError,
    RequestTooLargeError,
    StoreError,
    TenantConfig,
    TenantManager,
    TenantNotFoundError,
    TokenMeter,
    UnauthorizedError,
    billing_middleware,
)
from zerfoo_cloud.http import detect_interface, format_duration
from zerfoo_cloud.http._json import MAX_JSON_DEPTH
from zerfoo_cloud.http._policy import (
    MAX_TOKENS_LIMIT,
    Policy,
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
        {"model": "m", "prompt": "abcd", "max_completion_tokens": 7, "max_tokens": 9}
    ).encode()
    # Upstreams differ on which field wins (vLLM ignores a 0): reserve the larger.
    assert inspect_request("POST", "/v1/completions", body, OPTIONS).reserve == 10
    body = json.dumps({"model": "m", "prompt": "abcd", "max_tokens": None}).encode()
    assert inspect_request("POST", "/v1/completions", body, OPTIONS).reserve == 51
    body = json.dumps({"model": "e", "input": "abcd"}).encode()
    assert inspect_request("POST", "/v1/embeddings", body, OPTIONS).reserve == 1


def test_inspect_request_without_json_uses_the_default_estimate() -> None:
    """Bodies that are not JSON, on endpoints that take no model, pass unchanged."""
    for body in (b"--boundary\r\n", b"[1, 2]", b"\xff\xfe", b"plain text"):
        info = inspect_request("POST", "/v1/audio/transcriptions", body, OPTIONS)
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
    bad = json.dumps({"model": "m", "stream": True, "stream_options": "yes"}).encode()
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


# -- requests the policy cannot fully read (findings 2 and 3) -----------------
@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"model": "secret-model", "model": "toy-2"}', "model"),
        (b'{"model": "secret-model", "mod\\u0065l": "toy-2"}', "model"),
        (b'{"model": "toy-2", "max_tokens": 1, "max_tokens": 50000}', "max_tokens"),
        (b'{"model": "toy-2", "stream": false, "stream": true}', "stream"),
        (
            (
                b'{"model": "toy-2", "stream": true, "stream_options":'
                b' {"include_usage": false, "include_usage": true}}'
            ),
            "include_usage",
        ),
        ('{"model": "a", "model": "toy-2"}'.encode("utf-16"), "model"),
    ],
)
def test_a_repeated_member_the_policy_reads_is_refused(body: bytes, param: str) -> None:
    """The app could read the first of two values where the policy reads the last."""
    exc = _refusal("/v1/chat/completions", body)
    assert (exc.code, exc.param) == ("duplicate_member", param)
    assert error_response(exc).status == 400


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "toy-2", "messages": [{"role": "user", "content": "model"}]}',
        b'{"model": "toy-2", "metadata": {"a": 1, "a": 2}}',
        b'{"model": "toy-2", "prompt": "\\u0041 \\"model\\""}',
        b'{"model": "toy-2", "user": "\\u00e9"}',
    ],
)
def test_members_that_merely_look_repeated_pass(body: bytes) -> None:
    """A member name inside a string, or a repeated key the policy never reads, passes."""
    info = inspect_request("POST", "/v1/chat/completions", body, OPTIONS)
    assert info.model == "toy-2"
    assert info.body == body


_DEEP = b"[" * 5000 + b"1" + b"]" * 5000


def _refusal(path: str, body: bytes) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        inspect_request("POST", path, body, OPTIONS)
    return info.value


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (b'{"model": "toy-1", oops', "invalid_json", None),
        (b"", "invalid_json", None),
        (b"not json", "invalid_json", None),
        (b'{"model": ' + _DEEP + b"}", "invalid_json", None),
        (b'{"model": "m", "n": ' + b"1" * 4301 + b"}", "invalid_json", None),
        (b'{"model": "m", "stream": true, "prompt": "\\\\udc00"}', None, None),
        (b'{"model": "m", "stream": true, "prompt": "\\udc00"}', "invalid_json", None),
        (b'[{"model": "m"}]', "invalid_body", None),
        (b'"m"', "invalid_body", None),
        (b'{"prompt": "x"}', "missing_model", "model"),
        (b'{"model": null}', "missing_model", "model"),
        (b'{"model": ""}', "missing_model", "model"),
        (b'{"model": 3}', "invalid_model", "model"),
        (b'{"model": ["toy-2"]}', "invalid_model", "model"),
        (b'{"model": {"id": "toy-2"}}', "invalid_model", "model"),
        (b'{"model": true}', "invalid_model", "model"),
    ],
)
@pytest.mark.parametrize(
    "path",
    ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses/"],
)
def test_model_endpoints_refuse_bodies_they_cannot_fully_read(
    path: str, body: bytes, code: str | None, param: str | None
) -> None:
    """Unparsable JSON, non-objects and a missing or non-string model are 400s."""
    if code is None:
        info = inspect_request("POST", path, body, OPTIONS)
        assert info.model == "m"
        return
    exc = _refusal(path, body)
    assert (exc.code, exc.param) == (code, param)
    response = error_response(exc)
    assert response.status == 400
    error = json.loads(response.body)["error"]
    assert error == {
        "message": str(exc),
        "type": "invalid_request_error",
        "param": param,
        "code": code,
    }


def test_moderations_may_omit_the_model() -> None:
    """OpenAI's moderations default the model: allowed, and flagged for the allow list."""
    body = b'{"input": "abcd"}'
    info = inspect_request("POST", "/v1/moderations", body, OPTIONS)
    assert (info.model, info.default_model, info.reserve) == ("", True, 1)
    assert _refusal("/v1/moderations", b'{"model": 3}').code == "invalid_model"
    assert _refusal("/v1/moderations", b"{oops").code == "invalid_json"
    named = inspect_request("POST", "/v1/moderations", b'{"model": "x"}', OPTIONS)
    assert (named.model, named.default_model) == ("x", False)


def test_other_endpoints_refuse_what_looks_like_json_and_does_not_parse() -> None:
    """Elsewhere a body starting like JSON must parse, and a model must be a string."""
    path = "/v1/images/generations"
    for body in (b'  {"prompt": "x", oops', b"[" * 200 + b"]" * 200, _DEEP):
        assert _refusal(path, body).code == "invalid_json"
    assert _refusal(path, b'{"model": [1]}').code == "invalid_model"
    info = inspect_request("POST", path, b'{"prompt": "abcd"}', OPTIONS)
    assert (info.model, info.reserve) == ("", 51)


def test_the_usage_rewrite_never_fails_on_a_body_that_was_read() -> None:
    """Depth at the limit, big integers and NaN re-encode; the body is read once."""
    nested = b"[" * (MAX_JSON_DEPTH - 1) + b"1" + b"]" * (MAX_JSON_DEPTH - 1)
    body = (
        b'{"model": "m", "stream": true, "x": '
        + nested
        + b', "seed": 123456789012345678901234567890, "t": NaN, "p": "\\u00e9"}'
    )
    info = inspect_request("POST", CHAT_PATH, body, OPTIONS)
    assert info.rewritten
    doc = json.loads(info.body)
    assert doc["seed"] == 123456789012345678901234567890
    assert doc["stream_options"] == {"include_usage": True}
    assert doc["p"] == "\u00e9"
    plain = b'{"model": "m", "messages": []}'
    assert inspect_request("POST", CHAT_PATH, plain, OPTIONS).body is plain


CHAT_PATH = "/v1/chat/completions"


@pytest.mark.parametrize(
    "name", ["max_tokens", "max_completion_tokens", "max_output_tokens"]
)
def test_max_tokens_at_the_bound_and_past_it(name: str) -> None:
    """Non-negative integers up to MAX_TOKENS_LIMIT are reserved; others are 400s."""
    assert MAX_TOKENS_LIMIT == 2**31 - 1
    for good in (0, MAX_TOKENS_LIMIT):
        body = json.dumps({"model": "m", name: good}).encode()
        info = inspect_request("POST", CHAT_PATH, body, OPTIONS)
        assert info.reserve == good
    cases = [
        (MAX_TOKENS_LIMIT + 1, "integer_above_max_value"),
        (2**64, "integer_above_max_value"),
        (-1, "integer_below_min_value"),
        (1.5, "invalid_type"),
        (10.0, "invalid_type"),
        ("10", "invalid_type"),
        (True, "invalid_type"),
        ([10], "invalid_type"),
    ]
    for bad, code in cases:
        body = json.dumps({"model": "m", name: bad}).encode()
        exc = _refusal(CHAT_PATH, body)
        assert (exc.code, exc.param) == (code, name)
        assert json.loads(error_response(exc).body)["error"]["param"] == name


def _policy(budget: int, allow: tuple[str, ...] = ()) -> tuple[Policy, Any]:
    tenants = TenantManager()
    tenants.create(
        TenantConfig("t", "zc-key-0123456789", 0, budget, model_allow_list=allow)
    )
    return Policy(tenants, OPTIONS), tenants.get("t")


def _info(max_tokens: int, path: str = CHAT_PATH) -> RequestInfo:
    body = json.dumps({"model": "m", "max_tokens": max_tokens}).encode()
    return inspect_request("POST", path, body, OPTIONS)


def test_a_reservation_at_the_whole_budget_passes_and_one_more_is_refused() -> None:
    """Reservation == budget is admitted; budget + 1 is a 429 no wait can cure."""
    policy, tenant = _policy(1000)
    at_limit = _info(1000)  # no prompt: the reservation is max_tokens
    assert at_limit.reserve == 1000
    ticket = policy.admit(tenant, at_limit)
    policy.settle(ticket, None, 200, 0)
    policy, tenant = _policy(1000)
    with pytest.raises(RequestOverBudgetError) as info:
        policy.admit(tenant, _info(1001))
    exc = info.value
    assert (exc.limit, exc.requested) == (1000, 1001)
    assert tenant.token_quota().remaining == 1000
    assert tenant.request_quota().remaining >= 0
    with pytest.raises(RequestOverBudgetError) as info:
        policy.admit(tenant, _info(50_000))
    response = policy.refusal(info.value, tenant)
    assert response.status == 429
    assert "retry-after" not in dict(response.headers)
    assert json.loads(response.body)["error"] == {
        "message": "Request too large for m on tokens per min (the tenant's "
        "limit): Limit 1000, Requested 50000. The input or output tokens must be reduced in order "
        "to run successfully.",
        "type": "tokens",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert audit_result(response.status) == AuditResult.RATE_LIMITED


def test_a_default_model_needs_no_allow_list() -> None:
    """A request that lets the app choose its model is refused under an allow list."""
    body = b'{"input": "x"}'
    info = inspect_request("POST", "/v1/moderations", body, OPTIONS)
    policy, tenant = _policy(0, ("toy-2",))
    with pytest.raises(InvalidRequestError) as raised:
        policy.admit(tenant, info)
    assert (raised.value.code, raised.value.param) == ("missing_model", "model")
    policy, tenant = _policy(0)
    policy.settle(policy.admit(tenant, info), None, 200, 0)
