"""
Reading a request body: the model, the token reservation, streaming, and the
``stream_options.include_usage`` rewrite (`inspect_request`).

The reservation is the prompt estimate (`zerfoo_cloud.http._estimate`) plus
the largest of ``max_tokens``, ``max_completion_tokens`` and
``max_output_tokens`` (else ``default_max_tokens``; nothing for embeddings
and moderations); each must be an integer from 0 to `MAX_TOKENS_LIMIT`.

No request the policy cannot fully read reaches the app. The body is parsed
once by `zerfoo_cloud.http._json.parse_json` (bounded depth, size and number
length), and `InvalidRequestError` (400) refuses: on ``POST`` to a
chat/completions, completions, embeddings or responses path, a body that is
not a JSON object or a missing, empty or non-string ``model``; on a
moderations path the model may be omitted (`RequestInfo.default_model`),
except for a tenant with an allow list; on any path, a body that starts like
JSON and cannot be read, or a ``model`` that is not a string. A body that is
not JSON on another path (an upload) passes unchanged and reserves
``default_estimate``; a request without a body reserves nothing.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import TYPE_CHECKING, Any

from zerfoo_cloud.errors import InvalidRequestError, RequestTooLargeError
from zerfoo_cloud.http._estimate import estimate_prompt_tokens
from zerfoo_cloud.http._json import MAX_JSON_BYTES, parse_json
from zerfoo_cloud.http._request_info import RequestInfo
from zerfoo_cloud.metering import MAX_MODEL_LENGTH, billable_model

if TYPE_CHECKING:
    from zerfoo_cloud.http._options import PolicyOptions

__all__ = ["MAX_TOKENS_LIMIT", "inspect_for_metering", "inspect_request"]

#: The largest ``max_tokens`` (``max_completion_tokens``,
#: ``max_output_tokens``) accepted: the largest signed 32-bit integer.
MAX_TOKENS_LIMIT = 2**31 - 1
_MAX_TOKENS_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
_GENERATION_SUFFIXES = ("/chat/completions", "/completions")
_MODEL_SUFFIXES = ("/chat/completions", "/completions", "/embeddings", "/responses")
_OPTIONAL_MODEL_SUFFIXES = ("/moderations",)
_OTHER_ENDPOINT = 0
_MODEL_ENDPOINT = 1
_OPTIONAL_MODEL_ENDPOINT = 2
#: A body that starts like JSON (an object or array, maybe after a byte
#: order mark or in UTF-16/32) is JSON, whatever its endpoint.
_JSON_START = re.compile(
    rb"(?:\xef\xbb\xbf|\xff\xfe|\xfe\xff|\x00)?[ \t\r\n]*[\[{]|.?\x00"
)
_NO_COMPLETION_SUFFIXES = ("/embeddings", "/moderations")


def _max_tokens(doc: dict[str, Any]) -> int | None:
    """
    The largest completion allowance the body names, or ``None``.

    Upstreams differ on which of the fields wins (vLLM ignores a 0), so the
    reservation covers the largest.

    Raises:
        InvalidRequestError: a field is set (not ``null``) to something else
            than an integer from 0 to `MAX_TOKENS_LIMIT`.
    """
    found: int | None = None
    for name in _MAX_TOKENS_FIELDS:
        value = doc.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            msg = f"Invalid type for '{name}': expected an integer."
            raise InvalidRequestError(msg, code="invalid_type", param=name)
        if value < 0:
            msg = f"Invalid '{name}': expected a value >= 0, but got {value}."
            raise InvalidRequestError(msg, code="integer_below_min_value", param=name)
        if value > MAX_TOKENS_LIMIT:
            msg = (
                f"Invalid '{name}': expected a value <= {MAX_TOKENS_LIMIT}, "
                f"but got {value}."
            )
            raise InvalidRequestError(msg, code="integer_above_max_value", param=name)
        found = value if found is None else max(found, value)
    return found


def _endpoint(method: str, path: str) -> int:
    """Whether the request must name its model, may omit it, or neither."""
    if method != "POST":
        return _OTHER_ENDPOINT
    path = path.rstrip("/")
    if path.endswith(_MODEL_SUFFIXES):
        return _MODEL_ENDPOINT
    if path.endswith(_OPTIONAL_MODEL_SUFFIXES):
        return _OPTIONAL_MODEL_ENDPOINT
    return _OTHER_ENDPOINT


def _read_body(body: bytes, endpoint: int) -> dict[str, Any] | None:
    """
    The JSON object of *body*, or ``None`` for a body that is not JSON on an
    endpoint that takes no model.
    """
    if len(body) > MAX_JSON_BYTES:
        raise RequestTooLargeError(MAX_JSON_BYTES, len(body))
    try:
        doc = parse_json(body)
    except ValueError as exc:
        if endpoint == _OTHER_ENDPOINT and not _JSON_START.match(body):
            return None
        msg = f"We could not parse the JSON body of your request: {exc}"
        raise InvalidRequestError(msg, code="invalid_json") from None
    if isinstance(doc, dict):
        return doc
    if endpoint == _OTHER_ENDPOINT:
        return None
    msg = "The body of your request must be a JSON object."
    raise InvalidRequestError(msg, code="invalid_body")


#: The members the policy reads. An object that names one of them twice could
#: be read one way here (the last value wins) and another way by the app or
#: upstream (some parsers keep the first), so such a body is refused.
_POLICY_MEMBERS = frozenset(
    {
        "model",
        "max_tokens",
        "max_completion_tokens",
        "max_output_tokens",
        "stream",
        "stream_options",
        "include_usage",
    }
)
_POLICY_MEMBER_NAMES = {name: f'"{name}"'.encode() for name in _POLICY_MEMBERS}


def _may_repeat_a_member(body: bytes, doc: dict[str, Any]) -> bool:
    """
    Whether *body* may name a policy member twice: it does not when it is
    plain UTF-8 without ``\\u`` escapes (the only way to spell a name
    otherwise) and each policy member it holds appears once in its bytes.
    """
    if (b"\\" in body and b"\\u" in body) or b"\x00" in body:
        return True
    if body.startswith(codecs.BOM_UTF8):
        return True
    options = doc.get("stream_options")
    present = [name for name in doc if name in _POLICY_MEMBERS]
    if isinstance(options, dict) and "include_usage" in options:
        present.append("include_usage")
    for name in present:
        quoted = _POLICY_MEMBER_NAMES[name]
        first = body.find(quoted)
        if first >= 0 and body.find(quoted, first + len(quoted)) >= 0:
            return True
    return False


def _check_repeated_members(body: bytes, doc: dict[str, Any]) -> None:
    """
    Refuse a body in which an object names a policy member twice.

    Raises:
        InvalidRequestError: ``duplicate_member``, with the member as *param*.
    """
    if not _may_repeat_a_member(body, doc):
        return
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for name, _ in items:
            if name in seen and name in _POLICY_MEMBERS and not repeated:
                repeated.append(name)
            seen.add(name)
        return dict(items)

    # parse_json has read this body already: its depth and numbers are bounded.
    json.loads(body, object_pairs_hook=pairs)
    if repeated:
        name = repeated[0]
        msg = f"The body of your request names {name!r} more than once."
        raise InvalidRequestError(msg, code="duplicate_member", param=name)


def _model_of(doc: dict[str, Any], endpoint: int) -> str:
    model = doc.get("model")
    if isinstance(model, str) and model:
        return model
    if model is not None and not isinstance(model, str):
        msg = (
            f"Invalid type for 'model': expected a string, not {type(model).__name__}."
        )
        raise InvalidRequestError(msg, code="invalid_model", param="model")
    if endpoint == _MODEL_ENDPOINT:
        msg = "You must provide a model parameter."
        raise InvalidRequestError(msg, code="missing_model", param="model")
    return ""


def inspect_request(
    method: str, path: str, body: bytes, options: PolicyOptions
) -> RequestInfo:
    """
    Read the model, the token estimate and the streaming flags from a body,
    or refuse a body the policy cannot fully read (see `zerfoo_cloud.http._inspect`).

    A body that is not JSON, on an endpoint that takes no model, passes
    unchanged and reserves ``options.default_estimate``; an empty body there
    reserves nothing. For a streamed ``…/chat/completions`` or
    ``…/completions`` request without ``stream_options.include_usage``, and
    ``options.include_usage`` on, the body is rewritten to ask for it and
    *drop_usage_only* is set; otherwise *body* is the very object given.

    Raises:
        InvalidRequestError: the body is not JSON the policy can read, a
            model is missing or not a string, or a completion allowance is
            not an integer from 0 to `MAX_TOKENS_LIMIT`.
        RequestTooLargeError: the body is JSON larger than ``MAX_JSON_BYTES``.

    .. versionadded:: 0.1.0
    """
    endpoint = _endpoint(method, path)
    if not body and endpoint == _OTHER_ENDPOINT:
        return RequestInfo(body=body)
    doc = _read_body(body, endpoint)
    if doc is None:
        return RequestInfo(reserve=options.default_estimate, body=body)
    _check_repeated_members(body, doc)
    model = _model_of(doc, endpoint)
    mangled = False
    if len(model) > MAX_MODEL_LENGTH or not model.isascii():
        billed = billable_model(model)
        mangled = billed != model
        model = billed
    prompt = estimate_prompt_tokens(doc)
    completion = _max_tokens(doc)
    if completion is None:
        completion = (
            0 if path.endswith(_NO_COMPLETION_SUFFIXES) else options.default_max_tokens
        )
    stream = doc.get("stream") is True
    drop = False
    if stream and options.include_usage and path.endswith(_GENERATION_SUFFIXES):
        stream_options = doc.get("stream_options")
        if not isinstance(stream_options, dict):
            stream_options = {}
        if stream_options.get("include_usage") is not True:
            doc["stream_options"] = {**stream_options, "include_usage": True}
            # parse_json's limits (depth, valid Unicode) make this total.
            body = json.dumps(doc, ensure_ascii=False).encode()
            drop = True
    return RequestInfo(
        model,
        prompt,
        prompt + completion,
        stream,
        drop,
        body,
        drop,
        mangled,
        default_model=not model,
    )


def inspect_for_metering(
    method: str, path: str, body: bytes, options: PolicyOptions
) -> RequestInfo:
    """
    `inspect_request` for middleware that only meters and refuses nothing:
    a body the policy cannot read goes to the app unchanged, with
    ``options.default_estimate``. Never raises.

    .. versionadded:: 0.1.0
    """
    try:
        return inspect_request(method, path, body, options)
    except (InvalidRequestError, RequestTooLargeError):
        return RequestInfo(reserve=options.default_estimate, body=body)
