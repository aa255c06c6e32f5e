"""
Records and counters in different backends, end to end: ``zerfoo-cloud
serve`` processes with an LMDB folder each and their counters in one real
Redis, the readiness probe following Redis, and every CLI command taking
store URLs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests._background import serving
from tests._serving import BIN, ROOT, free_port
from zerfoo_cloud.cli import cli
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.open import COUNTERS_ENV, RECORDS_ENV

redis = pytest.importorskip("redis")

SECRET = "hunter2-S3CRET"


def _env(records: str, counters: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZERFOO_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env[RECORDS_ENV] = records
    if counters is not None:
        env[COUNTERS_ENV] = counters
    return env


def _serve_args() -> list[str]:
    return [str(BIN / "zerfoo-cloud"), "serve", "toy_openai_app:app", "--port", "0"]


def _chat(url: str, key: str) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "toy-1", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )


def _create(records: str, counters: str | None, *args: str) -> str:
    """Create tenant ``acme`` with the CLI; return its API key."""
    done = CliRunner().invoke(
        cli,
        ["--db", records, "tenant", "create", "acme", "--json", *args],
        env={COUNTERS_ENV: counters} if counters else {},
    )
    assert done.exit_code == 0, done.output
    key: str = json.loads(done.output)["api_key"]
    return key


def _redis_keys(url: str, prefix: str) -> list[bytes]:
    client = redis.Redis.from_url(url)
    try:
        return list(client.scan_iter(match=prefix + "*"))
    finally:
        client.close()


def _forget(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
    finally:
        client.close()


def _spread(host_a: Path, host_b: Path, counters: str | None, key: str) -> list[int]:
    """Serve *host_a* and *host_b* at once; send 10 requests alternating."""
    cwd = ROOT / "examples"
    with (
        serving(_serve_args(), cwd=cwd, env=_env(str(host_a), counters)) as a,
        serving(_serve_args(), cwd=cwd, env=_env(f"lmdb://{host_b}", counters)) as b,
    ):
        assert httpx.get(a + "/readyz").status_code == 200
        assert httpx.get(b + "/readyz").status_code == 200
        return [_chat(url, key).status_code for url in [a, b] * 5]


@pytest.mark.slow
def test_two_hosts_without_shared_counters_limit_each_on_its_own(
    tmp_path: Path,
) -> None:
    """The baseline the Redis test is measured against: 5 a minute per host."""
    host_a, host_b = tmp_path / "host-a", tmp_path / "host-b"
    key = _create(str(host_a), None, "--rate-limit", "5")
    shutil.copytree(host_a, host_b)
    assert _spread(host_a, host_b, None, key) == [200] * 10


@pytest.mark.slow
@pytest.mark.redis
def test_two_hosts_share_one_rate_limit_in_redis(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """Two serve processes, an LMDB folder each, one Redis: 5 a minute in all."""
    counters = f"{redis_url}?prefix={redis_prefix}"
    host_a, host_b = tmp_path / "host-a", tmp_path / "host-b"
    key = _create(str(host_a), counters, "--rate-limit", "5")
    # The second host gets the same tenant records (as a fleet would from
    # shared records); its counters are the first's, in Redis.
    shutil.copytree(host_a, host_b)
    try:
        statuses = _spread(host_a, host_b, counters, key)
        keys = _redis_keys(redis_url, redis_prefix)
        # Sent one after another: the first five pass, wherever they land,
        # and each host refuses once the other has used the bucket.
        assert statuses == [200] * 5 + [429] * 5, statuses
        assert any(b"acme" in k for k in keys), keys
        for host in (host_a, host_b):
            with LMDBStores.open(host) as stores:
                assert stores.limits.get("acme\x00req") is None
    finally:
        _forget(redis_url, redis_prefix)


@contextmanager
def _redis_server(port: int, folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed: install Redis 7")
    proc = subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(folder)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if redis.Redis(port=port).ping():
                    break
            except redis.exceptions.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        proc.wait(20)


def _wait_for(url: str, status: int) -> httpx.Response:
    deadline = time.monotonic() + 20
    while (answer := httpx.get(url + "/readyz", timeout=10)).status_code != status:
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.2)
    return answer


@pytest.mark.slow
@pytest.mark.redis
def test_readiness_follows_the_counters_store(tmp_path: Path) -> None:
    """/readyz is 503 naming the counters while Redis is down; requests get 503."""
    port = free_port()
    counters = f"redis://127.0.0.1:{port}/0?connect_timeout=0.5&socket_timeout=0.5"
    db = tmp_path / "db"
    env = _env(str(db), counters)
    with _redis_server(port, tmp_path) as proc:
        key = _create(str(db), counters)
        with serving(_serve_args(), cwd=ROOT / "examples", env=env) as url:
            assert _wait_for(url, 200).json() == {"status": "ready"}
            assert _chat(url, key).status_code == 200
            proc.terminate()
            proc.wait(20)
            down = _wait_for(url, 503)
            assert down.json() == {
                "status": "not ready",
                "checks": {"store": "ok", "counters": "failing"},
            }
            refused = _chat(url, key)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "service_unavailable"
            with _redis_server(port, tmp_path):
                assert _wait_for(url, 200).json() == {"status": "ready"}
                assert _chat(url, key).status_code == 200


@pytest.mark.slow
def test_serve_stops_in_one_line_on_a_bad_or_dead_counters_store(
    tmp_path: Path,
) -> None:
    dead = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0?connect_timeout=0.5"
    for counters, expected in [
        (dead, "check that Redis is running"),
        (f"redis://:{SECRET}@h/0?pool=3", "unknown query parameter 'pool'"),
        ("lmdb://relative", "absolute path after three slashes"),
    ]:
        done = subprocess.run(
            _serve_args(),
            cwd=ROOT / "examples",
            env=_env(str(tmp_path / "db"), counters),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1, done.stdout + done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("Error: "), lines
        assert expected in lines[0]
        assert SECRET not in done.stdout + done.stderr


@pytest.mark.slow
def test_serve_refuses_postgres_records_without_counters(tmp_path: Path) -> None:
    done = subprocess.run(
        _serve_args(),
        cwd=ROOT / "examples",
        env=_env(f"postgresql://zc:{SECRET}@127.0.0.1:5432/zc", None),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert f"set {COUNTERS_ENV}=redis://" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert SECRET not in done.stderr


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    done = CliRunner().invoke(cli, list(args), env=env or {})
    return done.exit_code, done.output


def test_cli_commands_take_store_urls(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    url = f"lmdb://{folder}"
    code, out = _run("--db", url, "tenant", "create", "acme", "--json")
    assert code == 0, out
    for db in (url, str(folder)):
        for args in (
            ("tenant", "show", "acme"),
            ("usage", "report"),
            ("audit", "verify"),
        ):
            code, out = _run("--db", db, *args)
            assert code == 0, (args, out)
    # The records store from the variable, the counters in another folder.
    counters = tmp_path / "counters"
    code, out = _run(
        "tenant",
        "update",
        "acme",
        "--rate-limit",
        "7",
        env={RECORDS_ENV: url, COUNTERS_ENV: str(counters)},
    )
    assert code == 0, out
    code, out = _run(
        "--db", str(folder), "--counters", f"lmdb://{counters}", "tenant", "list"
    )
    assert code == 0, out
    assert "acme" in out
    assert (counters / "data.mdb").exists()
    # memory:// is a fresh, empty store for each command.
    code, out = _run("--db", "memory://", "tenant", "list", "--json")
    assert code == 0, out
    assert json.loads(out) == []


def test_cli_lmdb_checks_apply_to_lmdb_only(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    code, out = _run("--db", f"lmdb://{missing}", "tenant", "list")
    assert code == 1
    assert f"no zerfoo-cloud store at {str(missing)!r}" in out
    assert not missing.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--db", "lmdb://relative"), "bad records store URL"),
        (("--db", "ftp://h"), "unknown scheme 'ftp'"),
        (("--counters", f"redis://:{SECRET}@h:x/0"), "port is not a number"),
        (("--counters", "redis://h/0?cluster=2"), "cluster must be 1 or 0"),
    ],
)
def test_cli_bad_urls_are_one_line(
    tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    base = ("--db", str(tmp_path / "db"))
    code, out = _run(*base, "tenant", "create", "x")
    assert code == 0, out
    code, out = _run(*base, *args, "tenant", "list")
    assert code == 1
    assert len(out.strip().splitlines()) == 1, out
    assert expected in out
    assert SECRET not in out


@pytest.mark.redis
def test_cli_counters_in_redis(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    counters = f"{redis_url}?prefix={redis_prefix}"
    db = str(tmp_path / "db")
    try:
        key = _create(db, counters, "--rate-limit", "3")
        assert key.startswith("zc-")
        code, out = _run(
            "--db", db, "--counters", counters, "tenant", "delete", "acme", "--yes"
        )
        assert code == 0, out
    finally:
        _forget(redis_url, redis_prefix)
