"""
The invariant check: runs probes against one real server (ASGI, WSGI or the
proxy, each behind `CloudServer` on LMDB stores) and checks, after every
example, what DESIGN.md promises for every request:

- the app (or upstream) was never called and the client got an
  OpenAI-shaped error with one audit entry, or it was called once and there
  is one billing record and one audit entry;
- the tenant's concurrency slots are all free and its token bucket holds its
  budget minus what was billed (the clock is frozen: nothing refills);
- and the parts of the contract that keep requests from reaching the app:
  a JSON body the policy cannot read, a model outside the allow list, a
  reservation over the whole budget and two ``Authorization`` headers never
  get there, nor a path the proxy must refuse to its upstream.

A broken promise fails with every request of the example, its response and
the app's reply, so the report reads without a debugger.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, NamedTuple

import attrs

from tests.fuzz._backend import REPLY_HEADER, short_bytes
from tests.fuzz._client import Response, send
from tests.fuzz._strategies import ALLOWED, BUDGET, DUPLICATE_AUTH, Probe

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from tests.fuzz._backend import Reply
    from zerfoo_cloud import (
        AuditLogger,
        BillingRecord,
        CloudServer,
        TenantManager,
        TokenMeter,
    )
    from zerfoo_cloud.stores.lmdb import LMDBStores

#: Seconds the accounting of an example may take to show after its last
#: response (it takes milliseconds; this only bounds a broken run).
SETTLE_SECONDS = 5.0
#: Concurrency slots of each tenant.
SLOTS = 2
#: Requests per minute of each tenant.
RATE = 10_000
_WRONG_KEY = "zc-fuzz-wrong-key-0000000000"
_EVER = (
    datetime(2000, 1, 1, tzinfo=timezone.utc),
    datetime(2200, 1, 1, tzinfo=timezone.utc),
)


class FrozenClock:
    """A clock that never moves: token buckets do not refill during a run."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@attrs.frozen
class Exchange:
    """One request of an example, what the app saw and what came back."""

    name: str
    probe: Probe
    reply: Reply
    response: Response | None
    error: str = ""

    def describe(self, calls: int, upstream_calls: int | None) -> str:
        """The request, the app's calls and reply, and the response, as text."""
        p, r = self.probe, self.response
        lines = [
            (
                f"  [{self.name}] {p.method} {p.target} auth={p.auth} "
                f"headers={list(p.headers)} max_tokens={p.max_tokens!r}"
            ),
            f"      body={short_bytes(p.body)}",
            f"      app calls={calls}"
            + ("" if upstream_calls is None else f" upstream calls={upstream_calls}"),
            f"      reply: {self.reply.summary()}",
        ]
        if r is None:
            lines.append(f"      response: none ({self.error})")
        else:
            headers = [
                (k, v)
                for k, v in r.headers
                if k.startswith(("x-", "content-", "retry"))
            ]
            lines.append(
                f"      response: {r.status} complete={r.complete} headers={headers}"
            )
            lines.append(f"      response body={short_bytes(r.body)}")
        return "\n".join(lines)


@attrs.frozen
class Problem:
    """One broken promise: *kind* names it (one per check), *what* says it."""

    kind: str
    what: str


class InvariantError(AssertionError):
    """A broken promise; one subclass per kind, so Hypothesis shrinks each apart."""


_KINDS: dict[str, type[InvariantError]] = {}


def broken(kind: str) -> type[InvariantError]:
    """The `InvariantError` subclass of problems of *kind*."""
    if kind not in _KINDS:
        name = "".join(part.title() for part in kind.split("-")) + "Broken"
        _KINDS[kind] = type(name, (InvariantError,), {"__doc__": f"Broken: {kind}."})
    return _KINDS[kind]


class _State(NamedTuple):
    records: list[BillingRecord]
    audits: int
    in_flight: int
    remaining: int


def openai_error(body: bytes) -> bool:
    """Whether *body* is ``{"error": {"message": str, "type": ..., "code": ...}}``."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return False
    error = doc.get("error") if isinstance(doc, dict) else None
    return (
        isinstance(error, dict)
        and isinstance(error.get("message"), str)
        and "type" in error
        and "code" in error
    )


def readable_model(body: bytes) -> str | None:
    """The model of a JSON request body Python reads in full, else ``None``."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    model = doc.get("model") if isinstance(doc, dict) else None
    return model if isinstance(model, str) else None


@attrs.define
class Harness:
    """
    One server under test and what the checks need to see behind it.

    *app_calls* counts the calls of the app `CloudServer` wraps (for the
    proxy: the proxy itself); *upstream_bodies* gives the bodies that reached
    the model server (the app, or the proxy's upstream); *proxy* says the
    server is the proxy (its path rules apply).
    """

    kind: str
    server: CloudServer
    address: tuple[str, int]
    stores: LMDBStores
    tenants: TenantManager
    meter: TokenMeter
    audit: AuditLogger
    expect: Callable[[str, Reply], None]
    app_calls: Callable[[str], int]
    upstream_bodies: Callable[[str], list[bytes]]
    proxy: bool = False
    _ids: itertools.count[int] = attrs.field(factory=itertools.count)

    # -- running ----------------------------------------------------------

    def _headers(self, probe: Probe, key: str, name: str) -> list[tuple[str, str]]:
        auth = {
            "bearer": [("Authorization", f"Bearer {key}")],
            "lower-bearer": [("Authorization", f"bearer {key}")],
            "x-api-key": [("x-api-key", key)],
            "missing": [],
            "wrong": [("Authorization", f"Bearer {_WRONG_KEY}")],
            "key-then-wrong": [
                ("Authorization", f"Bearer {key}"),
                ("Authorization", f"Bearer {_WRONG_KEY}"),
            ],
            "wrong-then-key": [
                ("Authorization", f"Bearer {_WRONG_KEY}"),
                ("Authorization", f"Bearer {key}"),
            ],
            "key-twice": [
                ("Authorization", f"Bearer {key}"),
                ("Authorization", f"Bearer {key}"),
            ],
            "wrong-bearer-and-x-api-key": [
                ("Authorization", f"Bearer {_WRONG_KEY}"),
                ("x-api-key", key),
            ],
        }[probe.auth]
        return [*auth, *probe.headers, (REPLY_HEADER, name)]

    def _audit_count(self) -> int:
        return self.stores.audit.walk(lambda _a, _h, entries: sum(1 for _ in entries))

    def run(self, requests: Sequence[tuple[Probe, Reply]]) -> None:
        """Send *requests* as a new tenant, then check every promise."""
        number = next(self._ids)
        tenant_id = f"fuzz-{self.kind}-{number}"
        key = f"zc-fuzz-{self.kind}-{number}-0123456789abcdef"
        from zerfoo_cloud import TenantConfig

        self.tenants.create(
            TenantConfig(
                tenant_id,
                key,
                rate_limit=RATE,
                token_budget=BUDGET,
                max_concurrent_requests=SLOTS,
                model_allow_list=ALLOWED,
            )
        )
        assert self.server.close(30)
        audits_before = self._audit_count()
        exchanges = []
        for i, (probe, reply) in enumerate(requests):
            name = f"{tenant_id}-{i}"
            self.expect(name, reply)
            try:
                response: Response | None = send(
                    self.address,
                    probe.method,
                    probe.target,
                    self._headers(probe, key, name),
                    probe.body,
                )
                error = ""
            except OSError as exc:
                response, error = None, f"{type(exc).__name__}: {exc}"
            exchanges.append(Exchange(name, probe, reply, response, error))
        problems = self._settled(tenant_id, exchanges, audits_before)
        problems += self._contract(exchanges)
        if problems:
            report = [
                f"{self.kind}: the invariant broke for tenant {tenant_id!r}:",
                *(f"- {p.what}" for p in problems),
                "requests, in order:",
                *(
                    e.describe(
                        self.app_calls(e.name),
                        len(self.upstream_bodies(e.name)) if self.proxy else None,
                    )
                    for e in exchanges
                ),
            ]
            raise broken(problems[0].kind)("\n".join(report))

    # -- checks -----------------------------------------------------------

    def _state(self, tenant_id: str, audits_before: int) -> _State:
        assert self.server.close(30)
        tenant = self.tenants.get(tenant_id)
        return _State(
            self.meter.query(tenant_id, *_EVER),
            self._audit_count() - audits_before,
            tenant.in_flight(),
            tenant.token_quota().remaining,
        )

    def _settled(
        self, tenant_id: str, exchanges: list[Exchange], audits_before: int
    ) -> list[Problem]:
        calls = sum(self.app_calls(e.name) for e in exchanges)
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            state = self._state(tenant_id, audits_before)
            settled = (
                len(state.records) == calls
                and state.audits == len(exchanges)
                and state.in_flight == 0
            )
            if settled or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        problems: list[Problem] = []
        records = state.records
        if len(records) != calls:
            problems.append(
                Problem(
                    "billing",
                    f"the app was called {calls} time(s) but there are "
                    f"{len(records)} billing record(s)",
                )
            )
        if state.audits != len(exchanges):
            problems.append(
                Problem(
                    "audit",
                    f"{len(exchanges)} request(s) sent but {state.audits} audit "
                    "entries written",
                )
            )
        if state.in_flight:
            problems.append(
                Problem(
                    "slot",
                    f"{state.in_flight} concurrency slot(s) still taken after "
                    "every response ended",
                )
            )
        billed = sum(r.input_tokens + r.output_tokens for r in records)
        expected = max(0, math.floor(BUDGET - billed))
        if state.remaining != expected:
            problems.append(
                Problem(
                    "reservation",
                    f"the token bucket holds {state.remaining} but the budget "
                    f"{BUDGET} minus the {billed} tokens billed leaves {expected}: "
                    "a reservation was not settled",
                )
            )
        ids = {r.request_id for r in records}
        for e in exchanges:
            r = e.response
            if r is None or not 200 <= r.status < 300:
                continue
            request_id = r.header("x-request-id")
            if request_id is not None and request_id not in ids:
                problems.append(
                    Problem(
                        "request-id",
                        f"[{e.name}] x-request-id {request_id!r} names no billing "
                        "record",
                    )
                )
        return problems

    def _contract(self, exchanges: list[Exchange]) -> list[Problem]:
        problems: list[Problem] = []
        for e in exchanges:
            called = self.app_calls(e.name)
            bodies = self.upstream_bodies(e.name)
            if called > 1 or len(bodies) > 1:
                problems.append(
                    Problem(
                        "called-twice", f"[{e.name}] the app was called {called} times"
                    )
                )
            if called:
                problems += self._admitted(e, bodies)
                continue
            r = e.response
            if r is None or not 400 <= r.status < 600 or not openai_error(r.body):
                problems.append(
                    Problem(
                        "refusal-shape",
                        f"[{e.name}] refused before the app, but the client did "
                        "not get an OpenAI-shaped error",
                    )
                )
        return problems

    def _admitted(self, e: Exchange, bodies: list[bytes]) -> list[Problem]:
        probe = e.probe
        problems: list[Problem] = []
        if not probe.keyed:
            problems.append(
                Problem("keyless", f"[{e.name}] served without the tenant's key")
            )
        if probe.auth in DUPLICATE_AUTH:
            problems.append(
                Problem(
                    "duplicate-auth",
                    f"[{e.name}] two Authorization headers, yet the app was "
                    "called (must be 400)",
                )
            )
        if probe.takes_model:
            for body in bodies:
                model = readable_model(body)
                if model not in ALLOWED:
                    problems.append(
                        Problem(
                            "unread-model",
                            f"[{e.name}] the model server got a body whose model "
                            f"is {model!r} (a model outside the allow list, or a "
                            "body the policy could not fully read): must be "
                            "400 or 403",
                        )
                    )
            mt = probe.max_tokens
            if type(mt) is int and mt > BUDGET:
                problems.append(
                    Problem(
                        "over-budget",
                        f"[{e.name}] max_tokens {mt} is over the whole budget "
                        f"{BUDGET}, yet the app was called (must be 429 or 400)",
                    )
                )
        if self.proxy and bodies and _refused_path(probe.target):
            problems.append(
                Problem(
                    "proxy-path",
                    f"[{e.name}] the proxy forwarded the path {probe.target!r}",
                )
            )
        return problems


def _refused_path(target: str) -> bool:
    from urllib.parse import unquote

    path = unquote(target.partition("?")[0])
    return ".." in path or "\\" in path or ";" in path
