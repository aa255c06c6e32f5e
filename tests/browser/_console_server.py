"""
A real ``zerfoo-cloud serve`` for the browser tests: the toy OpenAI app behind
the gateway, the admin API and the console, SAML login through the test IdP
and OpenID Connect login through the test provider, and tenants with usage,
invoices and audit entries: a month of records written before the server
starts, and real requests through the gateway.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import attrs
import httpx
import openai
from openai.types.chat import ChatCompletion

from tests._serving import ROOT, free_port, serve_command, spawn, stop
from tests.conftest import FakeClock
from zerfoo_cloud import TenantConfig, TenantManager, TokenMeter
from zerfoo_cloud.pricing import PriceTable
from zerfoo_cloud.stores.lmdb import LMDBStores

#: The operators' admin key (the server is given it in its environment).
ADMIN_KEY = "zca-browser-0123456789abcdefghijklmnopqrstuvwxyz"
#: The secret that signs console sessions.
SESSION_SECRET = "browser-tests-session-secret-0123456789"
#: The API keys of the tenants the server starts with.
KEYS = {
    "acme": "zc-acme-browser-0123456789abcdefghijklmnop",
    "globex": "zc-globex-browser-0123456789abcdefghijklm",
    "tiny": "zc-tiny-browser-0123456789abcdefghijklmnopq",
}
#: Requests per minute of each tenant: ``tiny`` allows one, the second gets 429.
RATE_LIMITS = {"acme": 600, "globex": 600, "tiny": 1}
#: The price file the server bills with (every model has a price).
PRICES = ROOT / "examples" / "prices.json"
#: Days of acme's traffic before today, made before the server starts.
HISTORY_DAYS = 29
#: The models of that traffic, each with a scale for its token counts.
HISTORY_MODELS = {"llama-3.1-8b": 30, "qwen2.5-72b": 10}
#: The prompts acme sends before the tests start (its usage and invoice).
PROMPTS = (
    "Summarise the quarterly report in three sentences",
    "Translate good morning into French",
    "List four prime numbers",
    "Write a haiku about rate limits",
    "What is the capital of Norway",
)


@attrs.frozen
class ConsoleServer:
    """
    A running server: its base URL and the folder of its store.
    """

    url: str
    db: Path

    def console(self, path: str = "") -> str:
        """The absolute URL of the console page *path* (``t/acme/keys``)."""
        return f"{self.url}/console/{path}"

    def client(self, tenant_id: str) -> openai.OpenAI:
        """An OpenAI client of the gateway with *tenant_id*'s key."""
        return openai.OpenAI(
            api_key=KEYS[tenant_id], base_url=self.url + "/v1", max_retries=0
        )


def say_hello(client: openai.OpenAI) -> ChatCompletion:
    """One small chat completion through the gateway."""
    return client.chat.completions.create(
        model="toy-1", messages=[{"role": "user", "content": "hello"}]
    )


def seed_store(db: Path) -> None:
    """
    Create the tenants of `KEYS` in the store at *db*, `HISTORY_DAYS` ago,
    and acme's earlier traffic: two more keys and, on each of the last
    `HISTORY_DAYS` days before today, requests to two models at the prices
    of `PRICES` (the same numbers on every run, so the screenshots show the
    same shape; only their dates move).
    """
    today = datetime.now(timezone.utc).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    clock = FakeClock((today - timedelta(days=HISTORY_DAYS)).timestamp())
    with LMDBStores.open(db) as stores:
        tenants = TenantManager(stores.tenants, clock=clock)
        for tenant_id, key in KEYS.items():
            tenants.create(TenantConfig(tenant_id, key, RATE_LIMITS[tenant_id], 0))
        key_ids = [
            tenants.create_key("acme", name=name)[1].id
            for name in ("production", "staging")
        ]
        tenants.close()
        meter = TokenMeter(
            stores.billing, clock=clock, prices=PriceTable.from_file(PRICES)
        )
        for day in range(HISTORY_DAYS, 0, -1):
            clock.now = (today - timedelta(days=day) + timedelta(hours=9)).timestamp()
            for model, scale in HISTORY_MODELS.items():
                for n in range(2 + (day * 5 + scale) % 4):
                    clock.advance(600)
                    meter.record(
                        "acme",
                        scale * (900 + (day * 37 + n * 101) % 700),
                        scale * (300 + (day * 53 + n * 59) % 400),
                        model=model,
                        key_id=key_ids[(day + n) % 2],
                    )
        meter.close()


def send_traffic(server: ConsoleServer) -> None:
    """acme's requests through the gateway: billed, counted and audited."""
    client = server.client("acme")
    for prompt in PROMPTS:
        client.chat.completions.create(
            model="toy-1",
            messages=[{"role": "user", "content": prompt}],
            max_tokens=16,
        )


def _answers(url: str) -> bool:
    """Whether a server answers at *url*."""
    try:
        httpx.get(url + "/healthz", timeout=1)
    except httpx.TransportError:
        return False
    return True


def _wait_until_up(url: str, proc: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 30
    while not _answers(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            msg = f"zerfoo-cloud serve did not start:\n{log.read_text()}"
            raise RuntimeError(msg)
        time.sleep(0.05)


#: The tenants that sign in through SAML; globex signs in through OpenID Connect.
SAML_TENANTS = ("acme", "tiny")
#: The environment variable holding the OpenID client secret for the server.
OIDC_SECRET_ENV = "ZC_BROWSER_OIDC_SECRET"


@attrs.frozen
class OpenIDClient:
    """What the server is told of the test OpenID provider."""

    issuer: str
    client_id: str
    client_secret: str = attrs.field(repr=False)


def oidc_file(folder: Path, client: OpenIDClient) -> Path:
    """
    The ``--oidc`` file: globex's people and the operators sign in through
    *client*'s provider, their groups mapped to roles.
    """
    common = {
        "issuer": client.issuer,
        "client_id": client.client_id,
        "client_secret_env": OIDC_SECRET_ENV,
    }
    providers = [
        {
            "tenant": "globex",
            **common,
            "roles": {"zc-admins": "admin", "zc-viewers": "viewer"},
        },
        {"operators": True, **common, "roles": {"zc-operators": "operator"}},
    ]
    path = folder / "oidc.json"
    path.write_text(json.dumps({"providers": providers}))
    return path


@contextmanager
def console_server(
    folder: Path, saml_metadata: Path, oidc: OpenIDClient
) -> Iterator[ConsoleServer]:
    """
    Serve the console from a fresh store in *folder*: acme and tiny sign
    in through the SAML IdP of *saml_metadata*, globex and the operators
    through the OpenID provider of *oidc*; stop the server after.
    """
    db = folder / "db"
    seed_store(db)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    saml = [f"--saml-metadata={tenant}={saml_metadata}" for tenant in SAML_TENANTS]
    args = serve_command(
        db,
        "toy_openai_app:app",
        "--port",
        str(port),
        "--public-url",
        url,
        "--prices",
        str(PRICES),
        "--oidc",
        str(oidc_file(folder, oidc)),
        *saml,
    )
    env = {
        "ZERFOO_CLOUD_ADMIN_KEY": ADMIN_KEY,
        "ZERFOO_CLOUD_SESSION_SECRET": SESSION_SECRET,
        OIDC_SECRET_ENV: oidc.client_secret,
    }
    log_path = folder / "serve.log"
    with log_path.open("w") as log:
        proc = spawn(args, cwd=ROOT / "examples", out=log, env=env, text=True)
        try:
            _wait_until_up(url, proc, log_path)
            server = ConsoleServer(url, db)
            send_traffic(server)
            yield server
        finally:
            stop(proc)
