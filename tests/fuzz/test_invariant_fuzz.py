"""
The accounting invariant under fuzzing, against real servers (ASGI in
uvicorn, WSGI in waitress, the proxy in uvicorn before a real upstream):
for every request with a tenant's key, either the app was never called and
the client got an OpenAI-shaped error with one audit entry, or it was called
and there is one billing record and one audit entry, its slot free and its
reservation settled. See `tests.fuzz._harness` for every check.

By default each server kind runs a fixed set of examples (the same on every
run); ``ZERFOO_FUZZ_EXAMPLES=N`` runs N examples, and ``ZERFOO_FUZZ_SEED=S``
(any integer, or ``random``) draws new ones (``make fuzz`` does both).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, example, given, seed, settings
from hypothesis import strategies as st

from tests.fuzz._backend import ECHO, Reply
from tests.fuzz._harness import Harness
from tests.fuzz._strategies import MODEL_PATHS, Probe, nested, probes, replies

pytestmark = pytest.mark.slow

_EXAMPLES = int(os.environ.get("ZERFOO_FUZZ_EXAMPLES", "60"))
_SEED = os.environ.get("ZERFOO_FUZZ_SEED", "")

Requests = list[tuple[Probe, Reply]]
EXAMPLES = st.lists(st.tuples(probes(), replies()), min_size=1, max_size=3)


_JSON = (("Content-Type", "application/json"),)
_OK = Reply(
    200,
    b"application/json",
    b'{"object":"chat.completion","usage":{"prompt_tokens":3,"completion_tokens":5}}',
)
_ECHO = Reply(
    200, b"application/json", b'{"object":"chat.completion","echo":' + ECHO + b"}"
)


def _chat(model: bytes = b'"toy-1"', extra: bytes = b"") -> bytes:
    return (
        b'{"model":'
        + model
        + b',"messages":[{"role":"user","content":"hi"}]'
        + extra
        + b"}"
    )


#: The reproducers of the issue, run first on every run.
KNOWN: list[Requests] = [
    # A deep model with a 19-digit run, echoed by the app (finding 1).
    [(Probe("POST", MODEL_PATHS[0], "bearer", _JSON, _chat(nested(968))), _ECHO)],
    # The same depth in the app's own answer (finding 1, past the policy).
    [
        (
            Probe("POST", MODEL_PATHS[0], "bearer", _JSON, _chat()),
            Reply(200, b"application/json", b'{"model":' + nested(968) + b"}"),
        )
    ],
    # No model, and a body Python refuses to read (finding 2).
    [(Probe("POST", MODEL_PATHS[1], "bearer", _JSON, b'{"prompt":"x"}'), _OK)],
    [
        (
            Probe(
                "POST",
                MODEL_PATHS[0],
                "bearer",
                _JSON,
                _chat(extra=b',"n":' + b"7" * 4301),
            ),
            _OK,
        )
    ],
    # JSON 5,000 deep, a lone surrogate in a stream (finding 3).
    [(Probe("POST", MODEL_PATHS[0], "bearer", _JSON, nested(5000, b"0")), _OK)],
    [
        (
            Probe(
                "POST",
                MODEL_PATHS[0],
                "bearer",
                _JSON,
                _chat(b'"\\udc00"', b',"stream":true'),
            ),
            _OK,
        )
    ],
    # A reservation over the whole budget, an absurd max_tokens (finding 4).
    [
        (
            Probe(
                "POST",
                MODEL_PATHS[0],
                "bearer",
                _JSON,
                _chat(extra=b',"max_tokens":100001'),
                100_001,
            ),
            _OK,
        )
    ],
    [
        (
            Probe(
                "POST",
                MODEL_PATHS[0],
                "bearer",
                _JSON,
                _chat(extra=b',"max_tokens":18446744073709551616'),
                2**64,
            ),
            _OK,
        )
    ],
    # Two Authorization headers; paths the proxy must refuse (finding 11).
    [(Probe("POST", MODEL_PATHS[0], "wrong-then-key", _JSON, _chat()), _OK)],
    [(Probe("GET", "/v1/..%5Cadmin", "bearer", (), b""), _OK)],
    [(Probe("GET", "/v1/models;x=1", "bearer", (), b""), _OK)],
    # Usage past 64 bits from the app or upstream (finding 12).
    [
        (
            Probe("POST", MODEL_PATHS[0], "bearer", _JSON, _chat()),
            Reply(
                200,
                b"application/json",
                b'{"usage":{"prompt_tokens":18446744073709551616,"completion_tokens":1}}',
            ),
        )
    ],
]


def _fuzz(test: Callable[[Harness, Requests], None]) -> Callable[..., None]:
    for requests in KNOWN:
        test = example(requests=requests)(test)
    configured = settings(
        max_examples=_EXAMPLES,
        deadline=None,
        derandomize=not _SEED,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )(given(EXAMPLES)(test))
    if _SEED and _SEED != "random":
        configured = seed(int(_SEED))(configured)
    return configured


@_fuzz
def test_asgi_invariant(asgi_harness: Harness, requests: Requests) -> None:
    """An ASGI app behind CloudServer keeps the invariant."""
    asgi_harness.run(requests)


@_fuzz
def test_wsgi_invariant(wsgi_harness: Harness, requests: Requests) -> None:
    """A WSGI app behind CloudServer keeps the invariant."""
    wsgi_harness.run(requests)


@_fuzz
def test_proxy_invariant(proxy_harness: Harness, requests: Requests) -> None:
    """The proxy behind CloudServer keeps the invariant."""
    proxy_harness.run(requests)
