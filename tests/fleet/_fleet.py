"""
A fleet for the tests: three ``zerfoo-cloud serve`` processes on three
ports, records in one PostgreSQL, counters in one Redis (both the tests'
own, see `tests.fleet._services`), all proxying to one upstream that counts
what is in flight (`tests.fleet._upstream`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._serving import BIN, ROOT, free_port, uvicorn_command
from tests.fleet._services import PostgresServer, RedisServer, wait_until
from zerfoo_cloud import TenantConfig, TenantManager
from zerfoo_cloud.audit import AuditLogger
from zerfoo_cloud.billing_records import BillingRecord
from zerfoo_cloud.stores.open import COUNTERS_ENV, OUTBOX_ENV, RECORDS_ENV, open_stores
from zerfoo_cloud.tenants import generate_api_key

#: The admin key every host accepts.
ADMIN_KEY = "fleet-admin-" + uuid.uuid4().hex
#: The token that reads /metrics on the serving port.
METRICS_TOKEN = "fleet-metrics-" + uuid.uuid4().hex
#: Seconds a dead host's concurrency slots stay taken.
LEASE_SECONDS = 2.0
#: Seconds to wait for Redis before a call counts as failed.
REDIS_TIMEOUT = 0.5


class Host:
    """One ``zerfoo-cloud serve`` process of the fleet, on a fixed port."""

    def __init__(
        self, name: str, env: dict[str, str], upstream: str, folder: Path, *args: str
    ) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**env, OUTBOX_ENV: str(folder / f"outbox-{name}")}
        self.args = [
            str(BIN / "zerfoo-cloud"),
            "serve",
            *("--upstream", upstream, "--port", str(self.port)),
            *("--log-level", "warning", *args),
        ]
        self.log = folder / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        """Start the process (`wait_ready` waits for it)."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.args,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        """Wait until it answers ``/healthz``."""

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"host {self.name} exited:\n{self.log.read_text()}")
            try:
                return httpx.get(self.url + "/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, f"host {self.name} did not answer /healthz", timeout=60)

    def kill(self) -> None:
        """SIGKILL the host's whole process group."""
        proc, self.proc = self.proc, None
        assert proc is not None
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM); `stop` waits."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self) -> None:
        """Stop it (SIGTERM), and kill it if it takes more than 20 s."""
        self.terminate()
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def metrics(self) -> str:
        """Its ``/metrics`` text."""
        answer = httpx.get(
            self.url + "/metrics",
            headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return answer.text


class Fleet:
    """
    The services and the hosts; `stores` is the test's own view of the
    shared records and counters.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.postgres = PostgresServer(folder / "postgres")
        self.redis = RedisServer(folder / "redis")
        self.records = ""
        self.counters = ""
        self.upstream_port = free_port()
        self.upstream = f"http://127.0.0.1:{self.upstream_port}"
        self.upstream_proc: subprocess.Popen[bytes] | None = None
        self.hosts: list[Host] = []
        self.stores: Any = None
        self.manager: TenantManager | None = None
        self.env: dict[str, str] = {}

    def start(self) -> None:
        """Start PostgreSQL, Redis, the upstream and three hosts."""
        self.postgres.start()
        self.records = self.postgres.create_database("fleet")
        self.redis.start()
        self.counters = (
            f"{self.redis.url}?prefix=fleet:&lease_seconds={LEASE_SECONDS}"
            f"&connect_timeout={REDIS_TIMEOUT}&socket_timeout={REDIS_TIMEOUT}"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZERFOO_")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env[RECORDS_ENV] = self.records
        env[COUNTERS_ENV] = self.counters
        env[OUTBOX_ENV] = str(self.folder / "outbox-commands")
        env["ZERFOO_CLOUD_ADMIN_KEY"] = ADMIN_KEY
        env["ZERFOO_CLOUD_METRICS_TOKEN"] = METRICS_TOKEN
        self.env = env
        # The documented first step of a fleet: the schema, once.
        upgrade = self.command("db", "upgrade")
        assert upgrade.returncode == 0, upgrade.stderr
        with (self.folder / "upstream.log").open("ab") as log:
            self.upstream_proc = subprocess.Popen(
                uvicorn_command(
                    "tests.fleet._upstream:app",
                    self.upstream_port,
                    "--log-level",
                    "warning",
                ),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.hosts = [self.host(name) for name in ("a", "b", "c")]
        for host in self.hosts:
            host.spawn()
        for host in self.hosts:
            host.wait_ready()
        wait_until(self._upstream_up, "the upstream did not start")
        self.stores = open_stores(
            self.records, self.counters, outbox=self.folder / "outbox-tests"
        )
        self.manager = TenantManager(
            self.stores.tenants,
            limits=self.stores.limits,
            revocations=self.stores.revocations,
        )

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``zerfoo-cloud ARGS`` with the fleet's URLs; return what it did."""
        return subprocess.run(
            [str(BIN / "zerfoo-cloud"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def host(self, name: str, *args: str) -> Host:
        """A new host of this fleet (not started)."""
        return Host(name, self.env, self.upstream, self.folder, *args)

    def _upstream_up(self) -> bool:
        try:
            return httpx.get(self.upstream + "/stats", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def close(self) -> None:
        """Stop everything started."""
        if self.manager is not None:
            self.manager.close()
        if self.stores is not None:
            self.stores.close()
        for host in self.hosts:
            host.terminate()
        for host in self.hosts:
            host.stop()
        if self.upstream_proc is not None:
            self.upstream_proc.terminate()
            self.upstream_proc.wait(20)
        self.redis.stop()
        self.postgres.stop()

    # -- helpers for the tests -------------------------------------------

    def tenant(self, **limits: Any) -> tuple[str, str]:
        """Create a tenant with *limits*; return its id and API key."""
        assert self.manager is not None
        tenant_id = "t" + uuid.uuid4().hex[:10]
        key = generate_api_key()
        self.manager.create(
            TenantConfig(
                id=tenant_id,
                api_key=key,
                rate_limit=limits.pop("rate_limit", 0),
                token_budget=limits.pop("token_budget", 0),
                **limits,
            )
        )
        return tenant_id, key

    def billing(self, tenant_id: str) -> list[BillingRecord]:
        """The tenant's billing records in PostgreSQL."""
        now = datetime.now(timezone.utc)
        records: list[BillingRecord] = self.stores.billing.query(
            tenant_id, now - timedelta(hours=1), now + timedelta(hours=1)
        )
        return records

    def audit_ok(self) -> bool:
        """Whether the shared audit chain verifies."""
        logger = AuditLogger(self.stores.audit)
        try:
            return logger.verify().ok
        finally:
            logger.close()

    def upstream_stats(self, *, reset: bool = False) -> dict[str, int]:
        """The upstream's counts (set back first with *reset*)."""
        if reset:
            return httpx.post(self.upstream + "/stats/reset", timeout=10).json()  # type: ignore[no-any-return]
        return httpx.get(self.upstream + "/stats", timeout=10).json()  # type: ignore[no-any-return]


def chat(
    client: httpx.Client, url: str, key: str, content: str = "hi", **extra: Any
) -> httpx.Response:
    """One chat completion through the host at *url*."""
    return client.post(
        url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "model": "toy-1",
            "messages": [{"role": "user", "content": content}],
            **extra,
        },
        timeout=30,
    )


def spread(
    fleet: Fleet, key: str, count: int, content: str = "hi", **extra: Any
) -> list[httpx.Response]:
    """*count* requests at once, round robin over the fleet's hosts."""
    urls = [fleet.hosts[i % len(fleet.hosts)].url for i in range(count)]
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    with (
        httpx.Client(limits=limits) as client,
        ThreadPoolExecutor(max_workers=min(count, 64)) as pool,
    ):
        return list(
            pool.map(lambda url: chat(client, url, key, content, **extra), urls)
        )


def elapsed_since(start: float) -> float:
    """Seconds since the `time.monotonic` reading *start*."""
    return time.monotonic() - start
