"""
Prometheus metrics: what each call moves, label bounds, resource gauges,
the /metrics ASGI app and multi-process aggregation.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    generate_latest,
)
from prometheus_client.multiprocess import mark_process_dead
from prometheus_client.parser import text_string_to_metric_families

from tests._metrics_workers import record_then_render
from zerfoo_cloud import AuditResult, InvalidConfigError, ResourceManager
from zerfoo_cloud.metrics import (
    CONTENT_TYPE,
    DEFAULT_BUCKETS,
    LIMITS,
    MAX_LABEL_LENGTH,
    OTHER,
    RESULTS,
    UNKNOWN,
    Metrics,
    metrics_app,
    render_multiprocess,
)

SPAWN = multiprocessing.get_context("spawn")
NS = "zerfoo_cloud_"


def samples(text: bytes | str) -> list[tuple[str, dict[str, str], float]]:
    """
    Every sample of a Prometheus text exposition, parsed by prometheus-client.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def value(text: bytes | str, name: str, **labels: str) -> float | None:
    """
    The value of the sample *name* whose labels are exactly *labels*, or None.
    """
    found = [v for n, lab, v in samples(text) if n == name and lab == labels]
    assert len(found) <= 1
    return found[0] if found else None


def requests(text: bytes | str, tenant: str, model: str, result: str) -> float | None:
    """
    The value of ``requests_total`` for one tenant, model and result.
    """
    return value(text, NS + "requests_total", tenant=tenant, model=model, result=result)


def tokens(text: bytes | str, tenant: str, model: str, direction: str) -> float | None:
    """
    The value of ``tokens_total`` for one tenant, model and direction.
    """
    labels = {"tenant": tenant, "model": model, "direction": direction}
    return value(text, NS + "tokens_total", **labels)


def label_values(text: bytes, name: str, label: str) -> set[str]:
    """
    Every value the label *label* takes in the samples named *name*.
    """
    return {lab[label] for n, lab, _ in samples(text) if n == name}


def test_a_finished_request_moves_counters_and_histogram() -> None:
    """A finished request adds one request, its tokens and its latency in the right bucket."""
    metrics = Metrics()
    metrics.request_finished("acme", "llama", "success", 0.2, 10, 20)
    metrics.request_finished("acme", "llama", "success", 0.004, 5, 0)
    out = metrics.render()
    assert requests(out, "acme", "llama", "success") == 2
    assert tokens(out, "acme", "llama", "prompt") == 15
    assert tokens(out, "acme", "llama", "completion") == 20
    hist = NS + "request_duration_seconds"
    assert value(out, hist + "_count", result="success") == 2
    assert value(out, hist + "_sum", result="success") == pytest.approx(0.204)
    assert value(out, hist + "_bucket", result="success", le="0.005") == 1
    assert value(out, hist + "_bucket", result="success", le="0.1") == 1
    assert value(out, hist + "_bucket", result="success", le="0.25") == 2
    assert value(out, hist + "_bucket", result="success", le="+Inf") == 2
    assert (
        value(out, NS + "limiter_rejections_total", tenant="acme", limit="tokens")
        is None
    )


def test_default_buckets_span_5ms_to_5min() -> None:
    """The latency histogram's buckets run from 5 ms to 5 minutes, then +Inf."""
    metrics = Metrics()
    metrics.request_finished("acme", "llama", "error", 301.0)
    out = metrics.render()
    les = [
        lab["le"]
        for n, lab, _ in samples(out)
        if n == NS + "request_duration_seconds_bucket"
    ]
    assert les[0] == "0.005"
    assert les[-2:] == ["300.0", "+Inf"]
    assert len(les) == len(DEFAULT_BUCKETS) + 1
    hist = NS + "request_duration_seconds_bucket"
    assert value(out, hist, result="error", le="300.0") == 0
    assert value(out, hist, result="error", le="+Inf") == 1


@pytest.mark.parametrize("result", sorted(RESULTS))
def test_every_result_is_a_label(result: str) -> None:
    """Each documented result is counted under its own label value."""
    metrics = Metrics()
    metrics.request_finished("acme", None, result, 0.01)
    out = metrics.render()
    assert requests(out, "acme", UNKNOWN, result) == 1
    assert value(out, NS + "request_duration_seconds_count", result=result) == 1


def test_audit_result_members_render_as_their_values() -> None:
    """An AuditResult member is accepted and rendered as its plain value."""
    metrics = Metrics()
    metrics.request_finished("acme", "llama", AuditResult.RATE_LIMITED, 0.01)
    metrics.request_finished("acme", "llama", "rate_limited", 0.01)
    out = metrics.render()
    labels = {"tenant": "acme", "model": "llama", "result": "rate_limited"}
    assert value(out, NS + "requests_total", **labels) == 2


@pytest.mark.parametrize("limit", sorted(LIMITS))
def test_rejections_are_counted_by_limit(limit: str) -> None:
    """rejected() counts one limiter rejection and nothing else."""
    metrics = Metrics()
    metrics.rejected("acme", limit)
    metrics.rejected("acme", limit)
    out = metrics.render()
    assert value(out, NS + "limiter_rejections_total", tenant="acme", limit=limit) == 2
    assert label_values(out, NS + "requests_total", "tenant") == set()
    assert label_values(out, NS + "in_flight_requests", "tenant") == set()


def test_unknown_result_or_limit_is_refused_and_counts_nothing() -> None:
    """An unknown result or limit raises InvalidConfigError and leaves every metric as it was."""
    metrics = Metrics()
    flight = metrics.request_started("acme")
    before = metrics.render()
    with pytest.raises(InvalidConfigError, match="result must be one of") as info:
        flight.finish("llama", "teapot")
    assert info.value.field == "result"
    with pytest.raises(InvalidConfigError, match="limit must be one of"):
        metrics.rejected("acme", "vibes")
    assert metrics.render() == before
    assert flight.active
    flight.finish("llama", "success")
    assert not flight.active


@pytest.mark.parametrize(
    ("field", "args"),
    [
        ("duration_s", (-0.001, 0, 0)),
        ("duration_s", (math.nan, 0, 0)),
        ("prompt_tokens", (0.1, -1, 0)),
        ("completion_tokens", (0.1, 0, -1)),
    ],
)
def test_negative_figures_are_refused(field: str, args: tuple[float, int, int]) -> None:
    """A negative or NaN figure raises InvalidConfigError naming it; nothing is counted or released."""
    metrics = Metrics()
    flight = metrics.request_started("acme")
    before = metrics.render()
    duration, prompt, completion = args
    with pytest.raises(InvalidConfigError) as info:
        flight.finish("llama", "success", prompt, completion, duration_s=duration)
    assert info.value.field == field
    assert metrics.render() == before
    assert flight.active


def test_in_flight_follows_the_token() -> None:
    """request_started raises the tenant's gauge; finishing the token lowers it and counts once."""
    metrics = Metrics()
    gauge = NS + "in_flight_requests"
    first = metrics.request_started("acme")
    second = metrics.request_started("acme")
    assert value(metrics.render(), gauge, tenant="acme") == 2
    first.finish("llama", "success", 3, 4)
    assert value(metrics.render(), gauge, tenant="acme") == 1
    first.finish("llama", "success", 3, 4)
    metrics.request_finished("acme", "llama", "success", 0.1, 3, 4, in_flight=first)
    assert not first.release()
    out = metrics.render()
    assert value(out, gauge, tenant="acme") == 1
    assert requests(out, "acme", "llama", "success") == 1
    assert tokens(out, "acme", "llama", "prompt") == 3
    metrics.request_finished("acme", "llama", "success", 0.1, in_flight=second)
    assert value(metrics.render(), gauge, tenant="acme") == 0


def test_leaving_the_block_unfinished_counts_an_error() -> None:
    """A request that leaves its with block without finish (an exception) counts once as an error of its model."""
    metrics = Metrics()

    def fail() -> None:
        with metrics.request_started("acme") as flight:
            flight.model = "llama"
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail()
    with metrics.request_started("acme"):
        pass
    out = metrics.render()
    assert value(out, NS + "in_flight_requests", tenant="acme") == 0
    assert requests(out, "acme", "llama", "error") == 1
    assert requests(out, "acme", UNKNOWN, "error") == 1


def test_release_only_lowers_the_gauge() -> None:
    """release() lowers the gauge once without counting a request; the block's exit then adds nothing."""
    metrics = Metrics()
    with metrics.request_started("acme") as flight:
        assert flight.release()
        assert not flight.release()
        flight.finish("llama", "success")
    out = metrics.render()
    assert value(out, NS + "in_flight_requests", tenant="acme") == 0
    assert requests(out, "acme", "llama", "success") == 1


def test_finish_measures_the_duration_since_start() -> None:
    """Without duration_s, finish observes the time since request_started."""
    metrics = Metrics()
    flight = metrics.request_started("acme")
    flight.started -= 7.0
    flight.finish("llama", "success")
    out = metrics.render()
    observed = value(out, NS + "request_duration_seconds_sum", result="success")
    assert observed is not None
    assert 7.0 <= observed < 60


def test_in_flight_is_balanced_and_never_negative_under_threads() -> None:
    """Eight threads starting and finishing requests leave the gauge at zero, never below, with every request counted."""
    metrics = Metrics()
    threads, rounds = 8, 300
    gauge = NS + "in_flight_requests"
    done = threading.Event()
    seen: list[float] = []

    def watch() -> None:
        for _ in range(5000):
            if done.is_set():
                return
            seen.append(
                metrics.registry.get_sample_value(gauge, {"tenant": "acme"}) or 0.0
            )

    def work(index: int) -> None:
        for i in range(rounds):
            with metrics.request_started("acme") as flight:
                if i % 3 == 0:
                    flight.release()
                flight.finish(f"m{index % 2}", "success", 1, 1)

    watcher = threading.Thread(target=watch)
    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    watcher.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join(60)
    done.set()
    watcher.join(60)
    assert seen
    assert min(seen) >= 0
    assert max(seen) <= threads
    out = metrics.render()
    assert value(out, gauge, tenant="acme") == 0
    total = sum(
        v
        for n, lab, v in samples(out)
        if n == NS + "requests_total" and lab["tenant"] == "acme"
    )
    assert total == threads * rounds


def test_racing_releases_of_one_token_lower_the_gauge_once() -> None:
    """Many threads releasing one token at once lower the gauge exactly once."""
    metrics = Metrics()
    keep = metrics.request_started("acme")
    flight = metrics.request_started("acme")
    barrier = threading.Barrier(8)
    wins: list[bool] = []

    def release() -> None:
        barrier.wait(30)
        wins.append(flight.release())

    threads = [threading.Thread(target=release) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(wins) == [False] * 7 + [True]
    assert value(metrics.render(), NS + "in_flight_requests", tenant="acme") == 1
    keep.release()


def test_model_labels_stop_at_the_cap() -> None:
    """With max_models=3, three models keep their names and the fourth is counted as other."""
    metrics = Metrics(max_models=3)
    for model in ("m0", "m1", "m2"):
        metrics.request_finished("acme", model, "success", 0.01)
    out = metrics.render()
    assert label_values(out, NS + "requests_total", "model") == {"m0", "m1", "m2"}
    metrics.request_finished("acme", "m3", "success", 0.01)
    metrics.request_finished("acme", "m4", "success", 0.01)
    metrics.request_finished("acme", "m0", "success", 0.01)
    out = metrics.render()
    assert label_values(out, NS + "requests_total", "model") == {
        "m0",
        "m1",
        "m2",
        OTHER,
    }
    assert label_values(out, NS + "tokens_total", "model") == {"m0", "m1", "m2", OTHER}
    assert requests(out, "acme", OTHER, "success") == 2
    assert requests(out, "acme", "m0", "success") == 2


def test_tenant_labels_stop_at_the_cap() -> None:
    """With max_tenants=2, two tenants keep their ids and the third is counted as other, in every metric."""
    metrics = Metrics(max_tenants=2)
    for tenant in ("a", "b", "c"):
        metrics.request_finished(tenant, "llama", "success", 0.01)
        metrics.rejected(tenant, "requests")
        metrics.request_started(tenant).release()
    out = metrics.render()
    for name in ("requests_total", "limiter_rejections_total", "in_flight_requests"):
        assert label_values(out, NS + name, "tenant") == {"a", "b", OTHER}, name


def test_placeholders_do_not_use_up_the_cap() -> None:
    """Missing tenants and models are unknown, and unknown never takes a place under the cap."""
    metrics = Metrics(max_models=1, max_tenants=1)
    metrics.request_finished(None, "", "error", 0.01)
    metrics.request_finished("", None, "error", 0.01)
    metrics.request_finished("acme", "llama", "success", 0.01)
    metrics.rejected(None, "body_size")
    out = metrics.render()
    assert requests(out, UNKNOWN, UNKNOWN, "error") == 2
    assert requests(out, "acme", "llama", "success") == 1
    assert (
        value(out, NS + "limiter_rejections_total", tenant=UNKNOWN, limit="body_size")
        == 1
    )


def test_label_values_are_cut_at_the_length_cap() -> None:
    """A 64-character model name is kept whole; one of 65 or more is cut to 64."""
    metrics = Metrics()
    exact = "m" * MAX_LABEL_LENGTH
    longer = "n" * (MAX_LABEL_LENGTH + 1)
    metrics.request_finished("acme", exact, "success", 0.01)
    metrics.request_finished("acme", longer, "success", 0.01)
    metrics.request_finished("acme", "x" * 100_000, "success", 0.01)
    out = metrics.render()
    assert label_values(out, NS + "requests_total", "model") == {
        exact,
        "n" * MAX_LABEL_LENGTH,
        "x" * MAX_LABEL_LENGTH,
    }


def test_unauthorized_requests_cannot_add_model_labels() -> None:
    """An unauthorized request keeps a model name seen before but cannot admit a new one."""
    metrics = Metrics()
    metrics.request_finished("acme", "llama", "success", 0.01)
    metrics.request_finished(None, "llama", "unauthorized", 0.01)
    metrics.request_finished(None, "attacker-chosen", "unauthorized", 0.01)
    out = metrics.render()
    assert label_values(out, NS + "requests_total", "model") == {"llama", OTHER}


def test_hostile_text_in_labels_still_renders() -> None:
    """Quotes, newlines, non-ASCII and a lone surrogate in a model name leave a parsable scrape."""
    metrics = Metrics()
    names = ['a"b\\c\nd', "modèle-日本", "bad\ud800"]
    for name in names:
        metrics.request_finished("acme", name, "success", 0.01)
    out = metrics.render()
    assert label_values(out, NS + "requests_total", "model") == {
        'a"b\\c\nd',
        "modèle-日本",
        "bad?",
    }


def test_resource_gauges_read_a_real_resource_manager() -> None:
    """The GPU gauges appear once a manager is tracked and follow its loads and evictions at each scrape."""
    metrics = Metrics()
    assert label_values(metrics.render(), NS + "gpu_memory_used_bytes", "x") == set()
    manager = ResourceManager(1000)
    metrics.track_resources(manager)
    out = metrics.render()
    assert value(out, NS + "gpu_memory_budget_bytes") == 1000
    assert value(out, NS + "gpu_memory_used_bytes") == 0
    assert value(out, NS + "models_loaded") == 0
    manager.load("a", 300)
    manager.load("b", 500)
    out = metrics.render()
    assert value(out, NS + "gpu_memory_used_bytes") == 800
    assert value(out, NS + "models_loaded") == 2
    manager.load("c", 400)  # evicts a, the least recently used
    out = metrics.render()
    assert value(out, NS + "gpu_memory_used_bytes") == 900
    assert value(out, NS + "models_loaded") == 2


def test_several_resource_managers_are_summed() -> None:
    """Two tracked managers (two GPUs) add up in each gauge."""
    metrics = Metrics()
    first, second = ResourceManager(1000), ResourceManager(3000)
    first.load("a", 100)
    second.load("b", 2000)
    metrics.track_resources(first)
    metrics.track_resources(second)
    out = metrics.render()
    assert value(out, NS + "gpu_memory_budget_bytes") == 4000
    assert value(out, NS + "gpu_memory_used_bytes") == 2100
    assert value(out, NS + "models_loaded") == 2


def test_tracking_something_without_stats_is_refused() -> None:
    """track_resources refuses an object without stats() at once."""
    with pytest.raises(InvalidConfigError, match="object has no stats"):
        Metrics().track_resources(object())  # type: ignore[arg-type]


def test_namespace_buckets_and_a_given_registry() -> None:
    """namespace and buckets shape the names and the histogram, and the collectors land in the given registry."""
    registry = CollectorRegistry()
    metrics = Metrics(registry=registry, namespace="", buckets=(0.1, 1.0))
    metrics.track_resources(ResourceManager(10))
    metrics.request_finished("acme", "llama", "success", 0.5)
    assert (
        registry.get_sample_value(
            "requests_total", {"tenant": "acme", "model": "llama", "result": "success"}
        )
        == 1
    )
    assert registry.get_sample_value("gpu_memory_budget_bytes") == 10
    les = [
        lab["le"]
        for n, lab, _ in samples(metrics.render())
        if n == "request_duration_seconds_bucket"
    ]
    assert les == ["0.1", "1.0", "+Inf"]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"namespace": "bad-name"}, "namespace"),
        ({"namespace": "9lives"}, "namespace"),
        ({"buckets": ()}, "buckets"),
        ({"buckets": (1.0, 0.5)}, "buckets"),
        ({"buckets": (0.5, 0.5)}, "buckets"),
        ({"buckets": (0.0, 1.0)}, "buckets"),
        ({"buckets": (1.0, math.inf)}, "buckets"),
        ({"max_models": 0}, "max_models"),
        ({"max_tenants": 0}, "max_tenants"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], field: str) -> None:
    """Each bad option raises InvalidConfigError naming it."""
    with pytest.raises(InvalidConfigError) as info:
        Metrics(**options)
    assert info.value.field == field


def test_the_smallest_caps_are_accepted() -> None:
    """max_models=1 and max_tenants=1 are valid: one name each."""
    metrics = Metrics(max_models=1, max_tenants=1)
    metrics.request_finished("a", "m", "success", 0.01)
    metrics.request_finished("b", "n", "success", 0.01)
    out = metrics.render()
    assert requests(out, "a", "m", "success") == 1
    assert requests(out, OTHER, OTHER, "success") == 1


def test_a_name_clash_leaves_the_registry_as_it_was() -> None:
    """A clash on one name registers none of the collectors, so the registry is unchanged."""
    registry = CollectorRegistry()
    taken = Counter("zerfoo_cloud_tokens", "Taken.", registry=registry)
    before = generate_latest(registry)
    with pytest.raises(InvalidConfigError, match="Duplicated") as info:
        Metrics(registry=registry)
    assert info.value.field == "registry"
    assert generate_latest(registry) == before
    registry.unregister(taken)
    Metrics(registry=registry).request_finished("acme", "llama", "success", 0.1)
    assert requests(generate_latest(registry), "acme", "llama", "success") == 1


def test_two_metrics_in_one_registry_need_two_namespaces() -> None:
    """A second Metrics with the same names in one registry is refused; another namespace is fine."""
    registry = CollectorRegistry()
    Metrics(registry=registry)
    with pytest.raises(InvalidConfigError, match="Duplicated"):
        Metrics(registry=registry)
    Metrics(registry=registry, namespace="other")


async def _call(app: Any, method: str, path: str = "/metrics") -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path)


def test_metrics_app_serves_the_exposition() -> None:
    """GET answers 200 with Prometheus' content type and a parsable body holding the counts."""
    metrics = Metrics()
    metrics.request_finished("acme", "llama", "success", 0.01, 1, 2)
    response = asyncio.run(_call(metrics_app(metrics), "GET"))
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST == CONTENT_TYPE
    assert int(response.headers["content-length"]) == len(response.content)
    body = response.text
    assert requests(body, "acme", "llama", "success") == 1


def test_metrics_app_head_has_headers_only() -> None:
    """HEAD answers 200 with the content type and no body."""
    response = asyncio.run(_call(metrics_app(Metrics()), "HEAD"))
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    assert response.content == b""


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_metrics_app_refuses_other_methods(method: str) -> None:
    """Methods other than GET and HEAD get 405 with an Allow header."""
    response = asyncio.run(_call(metrics_app(Metrics()), method))
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_metrics_app_acknowledges_lifespan_and_refuses_websockets() -> None:
    """The app completes lifespan startup and shutdown, and refuses a websocket scope."""
    app = metrics_app(Metrics())

    async def lifespan() -> list[str]:
        inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        sent: list[str] = []

        async def receive() -> dict[str, Any]:
            return inbox.pop(0)

        async def send(message: Any) -> None:
            sent.append(message["type"])

        await app({"type": "lifespan"}, receive, send)
        return sent

    assert asyncio.run(lifespan()) == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]

    async def websocket() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "websocket.connect"}

        async def send(message: Any) -> None:
            raise AssertionError(message)

        await app({"type": "websocket"}, receive, send)

    with pytest.raises(TypeError, match="HTTP only"):
        asyncio.run(websocket())


def test_multiprocess_dir_must_be_set_before_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PROMETHEUS_MULTIPROC_DIR naming no folder, or set after prometheus-client was imported, is refused."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    with pytest.raises(InvalidConfigError, match="is not a folder"):
        Metrics()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with pytest.raises(InvalidConfigError, match="set it before the process starts"):
        Metrics()
    with pytest.raises(InvalidConfigError, match="is not a folder"):
        render_multiprocess(tmp_path / "missing")


@pytest.mark.slow
def test_two_worker_processes_are_aggregated(tmp_path: Path) -> None:
    """Two spawned workers writing to one folder are summed by each worker's render and by the parent."""
    out: multiprocessing.Queue[tuple[str, int, bytes]] = SPAWN.Queue()
    render_now = SPAWN.Event()
    plans = [(3, 1, 300), (4, 2, 500)]
    procs = [
        SPAWN.Process(
            target=record_then_render,
            args=(str(tmp_path), requests, flights, vram, render_now, out),
        )
        for requests, flights, vram in plans
    ]
    for p in procs:
        p.start()
    pids = [p.pid for p in procs]
    try:
        ready = [out.get(timeout=60) for _ in procs]
        assert {kind for kind, _, _ in ready} == {"ready"}
        # Before any worker renders, the request path has written everything.
        early = render_multiprocess(tmp_path)
        assert value(early, NS + "in_flight_requests", tenant="acme") == 3
        for pid, (_, _, vram) in zip(pids, plans, strict=True):
            assert value(early, NS + "gpu_memory_used_bytes", pid=str(pid)) == vram + 50
        render_now.set()
        renders = {pid: body for _, pid, body in (out.get(timeout=60) for _ in procs)}
    finally:
        for p in procs:
            p.join(60)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0, 0]
    assert set(renders) == set(pids)

    parent = render_multiprocess(tmp_path)
    acme = {"tenant": "acme", "model": "llama"}
    for body in (*renders.values(), parent):
        assert value(body, NS + "requests_total", **acme, result="success") == 7
        assert value(body, NS + "tokens_total", **acme, direction="prompt") == 7
        assert value(body, NS + "tokens_total", **acme, direction="completion") == 14
        rejections = NS + "limiter_rejections_total"
        assert value(body, rejections, tenant="acme", limit="tokens") == 2
        hist = NS + "request_duration_seconds"
        assert value(body, hist + "_count", result="success") == 7
        assert value(body, hist + "_bucket", result="success", le="0.1") == 7
        assert value(body, NS + "in_flight_requests", tenant="acme") == 3
        for pid, (_, _, vram) in zip(pids, plans, strict=True):
            assert value(body, NS + "gpu_memory_used_bytes", pid=str(pid)) == vram + 50
            assert value(body, NS + "gpu_memory_budget_bytes", pid=str(pid)) == 1000
            assert value(body, NS + "models_loaded", pid=str(pid)) == 2

    # The operator step for a worker that died: its live gauges go away.
    mark_process_dead(pids[0], str(tmp_path))  # type: ignore[no-untyped-call]
    after = render_multiprocess(tmp_path)
    assert value(after, NS + "in_flight_requests", tenant="acme") == 2
    assert label_values(after, NS + "gpu_memory_used_bytes", "pid") == {str(pids[1])}
    assert requests(after, "acme", "llama", "success") == 7


def test_tenant_labels_can_be_hidden() -> None:
    """Finding 8: with tenant_labels=False no series names a tenant."""
    metrics = Metrics(tenant_labels=False)
    with metrics.request_started("acme") as flight:
        flight.finish("toy-1", "success", 3, 4)
    metrics.rejected("globex", "tokens")
    metrics.request_finished("globex", "toy-1", "rate_limited", 0.001)
    text = metrics.render().decode()
    assert "acme" not in text
    assert "globex" not in text
    assert 'requests_total{model="toy-1",result="success",tenant="all"} 1.0' in text
    assert 'limiter_rejections_total{limit="tokens",tenant="all"} 1.0' in text
