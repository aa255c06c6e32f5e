"""
The error tree: its families, the builtins each class keeps, and the HTTP
answer each class carries, read by the HTTP layer and nowhere else.
"""

from __future__ import annotations

import ast
import inspect
import json
import math
from pathlib import Path

import orjson
import pytest

import zerfoo_cloud
import zerfoo_cloud.errors
import zerfoo_cloud.sso.errors
from zerfoo_cloud import (
    CloudError,
    InvalidConfigError,
    RequestRejectedError,
    ResourceError,
    StoreError,
)
from zerfoo_cloud.errors import (
    BudgetExceededError,
    BudgetUnenforceableError,
    DuplicateHeaderError,
    GPUUnavailableError,
    InvalidRequestError,
    ModelFormatError,
    ModelNotAllowedError,
    ModelNotFoundError,
    ModelNotLoadedError,
    ModelTooLargeError,
    RateLimitedError,
    RequestOverBudgetError,
    RequestTooLargeError,
    ResourceBusyError,
    StoreUnavailableError,
    TenantNotFoundError,
    UnauthorizedError,
)
from zerfoo_cloud.http import status_for
from zerfoo_cloud.http._errors import error_response
from zerfoo_cloud.http._models import ModelListError

HTTP = Path(zerfoo_cloud.__file__).parent / "http"


def _subclasses(base: type[BaseException]) -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    todo = [base]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("zerfoo_cloud") and sub not in found:
                found.append(sub)
                todo.append(sub)
    return sorted(found, key=lambda cls: cls.__name__)


def _instance(cls: type[BaseException]) -> BaseException:
    # One instance of each class, built from its own signature.
    samples: dict[str, object] = {
        "message": "m",
        "reason": "invalid",
        "code": "invalid_json",
        "header": "Authorization",
        "limit": 10,
        "size": 11,
        "retry_after": 2.5,
        "requested": 20,
        "seq": 1,
        "problem": "altered",
        "found": 1,
        "expected": 2,
        "bytes_sent": 0,
        "vram_bytes": 2,
        "budget_bytes": 1,
    }
    try:
        params = inspect.signature(cls).parameters.values()
    except ValueError:  # Exception's own constructor: one message
        return cls("m")
    args: list[object] = []
    kwargs: dict[str, object] = {}
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is not param.empty:
            continue
        value = samples.get(param.name, "x")
        if cls is RateLimitedError and param.name == "limit":
            value = "requests"
        if param.kind is param.KEYWORD_ONLY:
            kwargs[param.name] = value
        else:
            args.append(value)
    return cls(*args, **kwargs)


REJECTIONS = _subclasses(RequestRejectedError)
EVERY_ERROR = _subclasses(CloudError)


def test_the_tree_is_found() -> None:
    # The walk sees the whole tree, the SAML checks included.
    names = {cls.__name__ for cls in EVERY_ERROR}
    assert {"RequestRejectedError", "ResourceError", "SAMLReplayError"} <= names
    assert len(REJECTIONS) >= 8


@pytest.mark.parametrize(
    ("cls", "status", "kind", "code"),
    [
        (InvalidRequestError, 400, "invalid_request_error", "invalid_request"),
        (DuplicateHeaderError, 400, "invalid_request_error", "duplicate_header"),
        (UnauthorizedError, 401, "invalid_request_error", "invalid_api_key"),
        (ModelNotAllowedError, 403, "invalid_request_error", "model_not_allowed"),
        (ModelNotFoundError, 404, "invalid_request_error", "model_not_found"),
        (RequestTooLargeError, 413, "invalid_request_error", "request_too_large"),
        (RateLimitedError, 429, "requests", "rate_limit_exceeded"),
        (RequestOverBudgetError, 429, "tokens", "rate_limit_exceeded"),
        (BudgetExceededError, 429, "insufficient_quota", "insufficient_quota"),
        (
            BudgetUnenforceableError,
            403,
            "invalid_request_error",
            "budget_not_enforceable",
        ),
        (TenantNotFoundError, 401, "invalid_request_error", "invalid_api_key"),
        (StoreError, 503, "server_error", "service_unavailable"),
        (ModelListError, 502, "server_error", "internal_error"),
        (CloudError, 500, "server_error", "internal_error"),
    ],
)
def test_each_class_carries_its_answer(
    cls: type[CloudError], status: int, kind: str, code: str
) -> None:
    assert (cls.http_status, cls.error_type, cls.error_code) == (status, kind, code)


@pytest.mark.parametrize("cls", REJECTIONS, ids=lambda cls: cls.__name__)
def test_every_rejection_is_a_4xx_answered_as_it_says(cls: type[BaseException]) -> None:
    exc = _instance(cls)
    assert isinstance(exc, RequestRejectedError)
    assert 400 <= exc.http_status < 500
    assert exc.error_type
    assert exc.error_code
    response = error_response(exc, request_id="req_1")
    error = json.loads(response.body)["error"]
    assert response.status == exc.http_status
    assert (error["type"], error["code"], error["param"]) == (
        exc.error_type,
        exc.error_code,
        exc.error_param,
    )
    assert error["message"] == str(exc)


@pytest.mark.parametrize("cls", EVERY_ERROR, ids=lambda cls: cls.__name__)
def test_every_error_is_answered_from_its_class(cls: type[BaseException]) -> None:
    exc = _instance(cls)
    assert isinstance(exc, CloudError)
    assert status_for(exc) == (exc.http_status, exc.error_type, exc.error_code)
    rejected = isinstance(exc, RequestRejectedError)
    assert (400 <= exc.http_status < 500) == rejected or isinstance(
        exc, TenantNotFoundError
    )
    assert exc.http_status in {400, 401, 403, 404, 413, 429, 500, 502, 503}


def test_an_instance_answers_with_its_own_data() -> None:
    # The code and param of a body error, and the limit of a rate limit, are
    # the instance's, not the class default.
    exc = InvalidRequestError("bad", code="missing_model", param="model")
    error = json.loads(error_response(exc).body)["error"]
    assert (error["code"], error["param"]) == ("missing_model", "model")
    assert InvalidRequestError.error_code == "invalid_request"
    assert InvalidRequestError.error_param is None
    concurrency = RateLimitedError("t", "concurrency", 0.2)
    response = error_response(concurrency)
    assert json.loads(response.body)["error"]["type"] == "concurrency"
    assert dict(response.headers)["retry-after"] == "1"
    assert RateLimitedError.error_type == "requests"
    forever = error_response(RateLimitedError("t", "tokens", math.inf))
    assert dict(forever.headers)["retry-after"] == "60"


def test_only_a_wait_that_helps_sends_retry_after() -> None:
    over = error_response(RequestOverBudgetError("t", "m", 10, 20))
    assert over.status == 429
    assert "retry-after" not in dict(over.headers)
    assert RequestRejectedError.retry_after is None


def test_a_foreign_exception_is_a_hidden_500() -> None:
    for exc in (ValueError("secret internals"), KeyboardInterrupt()):
        response = error_response(exc)
        error = json.loads(response.body)["error"]
        assert response.status == 500
        assert (error["type"], error["code"]) == ("server_error", "internal_error")
        assert "secret" not in error["message"]


def test_the_http_layer_keeps_no_table_of_error_classes() -> None:
    # No module of the inference path maps an error class to a status: no
    # dict keyed by a ``...Error`` name and no ``isinstance`` test in
    # ``_errors``; the classes say it themselves. The admin API answers its
    # own operations (404 for an unknown tenant id, 409 for a duplicate)
    # with its own codes, so ``admin.py`` is not the inference path's.
    errors = {name for name in dir(zerfoo_cloud.errors) if name.endswith("Error")}
    for path in sorted(HTTP.glob("*.py")):
        if path.name == "admin.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                keys = {k.id for k in node.keys if isinstance(k, ast.Name)}
                assert not keys & errors, f"{path.name}:{node.lineno}"
    source = (HTTP / "_errors.py").read_text(encoding="utf-8")
    tested = {
        node.args[1].id
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "isinstance"
        and isinstance(node.args[1], ast.Name)
    }
    assert tested <= {"CloudError", "RequestRejectedError"}


@pytest.mark.parametrize(
    ("cls", "bases"),
    [
        (ModelTooLargeError, (ResourceError,)),
        (ModelNotLoadedError, (ResourceError, LookupError)),
        (ModelFormatError, (ResourceError, InvalidConfigError, ValueError)),
        (ResourceBusyError, (ResourceError,)),
        (GPUUnavailableError, (ResourceError,)),
        (ModelNotAllowedError, (RequestRejectedError, PermissionError)),
        (InvalidRequestError, (RequestRejectedError, ValueError)),
        (ModelNotFoundError, (RequestRejectedError, LookupError)),
        (TenantNotFoundError, (CloudError, LookupError)),
    ],
)
def test_every_family_keeps_its_builtin(
    cls: type[BaseException], bases: tuple[type[BaseException], ...]
) -> None:
    # ``except LookupError`` (and the like) in users' code keeps working.
    for base in bases:
        assert issubclass(cls, base), base


def test_the_families_are_exported() -> None:
    for name in ("RequestRejectedError", "ResourceError"):
        assert name in zerfoo_cloud.__all__
        assert name in zerfoo_cloud.errors.__all__
    assert issubclass(zerfoo_cloud.sso.errors.SAMLReplayError, CloudError)


def test_the_documented_tree_names_every_class() -> None:
    # The picture in the module docstring lists every class of the tree.
    doc = zerfoo_cloud.errors.__doc__ or ""
    for cls in EVERY_ERROR:
        if cls.__module__ in {"zerfoo_cloud.errors", "zerfoo_cloud.sso.errors"}:
            assert f" {cls.__name__}" in doc, cls.__name__


def test_the_concepts_page_draws_every_class() -> None:
    # docs/concepts.md draws the tree too; every class of errors.py is in it.
    page = (Path(__file__).resolve().parent.parent / "docs" / "concepts.md").read_text(
        encoding="utf-8"
    )
    for cls in EVERY_ERROR:
        if cls.__module__ == "zerfoo_cloud.errors":
            assert f"── {cls.__name__}" in page, cls.__name__


def test_store_unavailable_answers_503_with_retry_after() -> None:
    exc = StoreUnavailableError("redis", "the counter store cannot be reached", 2.5)
    response = error_response(exc)
    assert response.status == 503
    headers = dict(response.headers)
    assert headers["retry-after"] == "3"
    body = orjson.loads(response.body)["error"]
    assert body["code"] == "service_unavailable"
    assert body["message"] == "the counter store cannot be reached"
    assert isinstance(exc, StoreError)
    assert exc.store == "redis"
