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
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tests.fuzz._backend import Reply
from tests.fuzz._harness import Harness
from tests.fuzz._strategies import Probe, probes, replies

pytestmark = pytest.mark.slow

_EXAMPLES = int(os.environ.get("ZERFOO_FUZZ_EXAMPLES", "60"))
_SEED = os.environ.get("ZERFOO_FUZZ_SEED", "")

Requests = list[tuple[Probe, Reply]]
EXAMPLES = st.lists(st.tuples(probes(), replies()), min_size=1, max_size=3)


def _fuzz(test: Callable[[Harness, Requests], None]) -> Callable[..., None]:
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
