"""
The zerfoo-cloud demo: a real multi-tenant server in under a minute.

``make demo`` runs this. It makes an LMDB store in a temporary folder,
creates two tenants with the ``zerfoo-cloud`` command, starts
``zerfoo-cloud serve`` in front of the toy OpenAI-compatible app in
``examples/toy_openai_app.py``, and talks to it with the official ``openai``
client: a plain and a streamed chat completion, one request over the
tenant's rate limit, one for a model it may not use and one with a wrong
key; then a third tenant with a small monthly spend budget, served until
the budget cannot hold the next request (429 ``insufficient_quota``). Then
it stops the server, prints the usage report and the budgeted tenant's
invoice, and verifies the audit chain.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import openai
from openai.types.chat import ChatCompletionMessageParam

from zerfoo_cloud import TenantManager
from zerfoo_cloud.budget_records import SpendBudget
from zerfoo_cloud.invoices import build_invoice, parse_month
from zerfoo_cloud.pricing import PriceTable, format_cost
from zerfoo_cloud.stores.lmdb import LMDBStores

HERE = Path(__file__).resolve().parent
CLI = str(Path(sys.executable).parent / "zerfoo-cloud")
ADMIN_KEY = "demo-admin-key-" + os.urandom(8).hex()
#: Every model costs 100 USD per million prompt tokens and 200 per million
#: completion tokens (dear, so that a small budget runs out at once).
PRICES = {
    "currency": "USD",
    "models": {},
    "default": [
        {"effective_from": "2026-01-01T00:00:00Z", "input": "100", "output": "200"}
    ],
}
#: initech's monthly spend budget: one US cent.
BUDGET = SpendBudget("month", 10_000, "USD", "Europe/Paris")
METRICS_TOKEN = "demo-metrics-token-" + os.urandom(8).hex()
SESSION_SECRET = "demo-session-secret-" + os.urandom(16).hex()


def zc(db: Path, *args: str) -> str:
    """
    Run the zerfoo-cloud command and return what it printed.
    """
    done = subprocess.run(
        [CLI, "--db", str(db), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


def free_port() -> int:
    """
    A free TCP port on 127.0.0.1.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def step(title: str) -> None:
    """
    Print a section title.
    """
    print(f"\n== {title}")


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    """
    Wait until the server answers /healthz.
    """
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = "the server exited; see its output above"
            raise SystemExit(msg)
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    msg = "the server did not start within 30 s"
    raise SystemExit(msg)


def budgeted(url: str, initech: str) -> None:
    """
    Spend initech's budget, then show the refusal that follows.
    """
    client = openai.OpenAI(base_url=url + "/v1", api_key=initech, max_retries=0)
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "Count my money."}
    ]
    step(f"initech: a monthly spend budget of {format_cost(BUDGET.amount, 'USD')}")
    for attempt in range(1, 10):
        try:
            client.chat.completions.create(
                model="toy-1", messages=messages, max_tokens=8
            )
        except openai.RateLimitError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            print(f"request {attempt}: 429 {body.get('code')}: {body.get('message')}")
            return
        print(f"request {attempt}: ok")


def invoice(db: Path, prices: PriceTable) -> None:
    """
    Print initech's invoice for this month, from its billing records.
    """
    month = datetime.now(timezone.utc).strftime("%Y-%m")
    step(f"initech's invoice for {month}")
    with LMDBStores.open(db) as stores:
        records = stores.billing.query("initech", *parse_month(month))
    bill = build_invoice("initech", month, records, prices=prices)
    for line in bill.lines:
        print(
            f"{line.model}: {line.requests} requests, {line.input_tokens} + "
            f"{line.output_tokens} tokens, {format_cost(line.cost, line.currency)}"
        )
    total = bill.total or 0
    print(
        f"total: {format_cost(total, 'USD')} of a {format_cost(BUDGET.amount, 'USD')} budget"
    )


def requests(url: str, acme: str, globex: str) -> None:
    """
    Send the demo's requests with the official openai client and print each outcome.
    """
    client = openai.OpenAI(base_url=url + "/v1", api_key=acme, max_retries=0)
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "Say something about tenants."}
    ]

    step("acme: a plain chat completion (toy-1)")
    reply = client.chat.completions.create(
        model="toy-1", messages=messages, max_tokens=8
    )
    usage = reply.usage
    assert usage is not None
    print(f"reply: {reply.choices[0].message.content!r}")
    print(
        f"usage: {usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens"
    )

    step("acme: a streamed chat completion")
    stream = client.chat.completions.create(
        model="toy-1",
        messages=messages,
        max_tokens=8,
        stream=True,
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    print(f"streamed {len(pieces)} chunks: {''.join(pieces)!r}")

    step("acme: a third request (its limit is 3 per minute), then one too many")
    raw = client.chat.completions.with_raw_response.create(
        model="toy-1",
        messages=messages,
        max_tokens=4,
    )
    print(
        f"ok; x-ratelimit-remaining-requests: {raw.headers['x-ratelimit-remaining-requests']}"
    )
    try:
        client.chat.completions.create(model="toy-1", messages=messages, max_tokens=4)
    except openai.RateLimitError as exc:
        print(
            f"429 RateLimitError, Retry-After: {exc.response.headers['retry-after']} s"
        )

    step("acme: a model outside its allow list (toy-2)")
    try:
        client.chat.completions.create(model="toy-2", messages=messages, max_tokens=4)
    except openai.PermissionDeniedError as exc:
        print(f"403 PermissionDeniedError: {exc.body}")

    step("globex: toy-2 is allowed for this tenant")
    other = openai.OpenAI(base_url=url + "/v1", api_key=globex, max_retries=0)
    reply = other.chat.completions.create(
        model="toy-2", messages=messages, max_tokens=6
    )
    print(f"reply: {reply.choices[0].message.content!r}")
    vectors = other.embeddings.create(model="toy-1", input=["hello", "world"])
    print(
        f"embeddings: {len(vectors.data)} vectors of {len(vectors.data[0].embedding)}"
    )

    step("a wrong key")
    try:
        openai.OpenAI(
            base_url=url + "/v1", api_key="zc-wrong", max_retries=0
        ).models.list()
    except openai.AuthenticationError:
        print("401 AuthenticationError")

    step("the admin API (admin key from ZERFOO_CLOUD_ADMIN_KEY)")
    listed = httpx.get(
        url + "/admin/tenants", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    print(
        f"GET /admin/tenants -> {listed.status_code}: {[t['id'] for t in listed.json()['data']]}"
    )
    step("/metrics (only with ZERFOO_CLOUD_METRICS_TOKEN: never public)")
    print(
        f"GET /metrics without the token -> {httpx.get(url + '/metrics').status_code}"
    )
    metrics = httpx.get(
        url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    ).text
    ok = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("zerfoo_cloud_requests_total{")
        and 'result="success"' in line
    )
    print(f"/metrics: {ok:.0f} successful requests counted")


def main() -> None:
    """
    Run the whole demo.
    """
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="zerfoo-demo-"))
    db = folder / "store"
    try:
        step(f"two tenants in a new LMDB store ({db})")
        acme = json.loads(
            zc(
                db,
                "tenant",
                "create",
                "acme",
                "--rate-limit",
                "3",
                "--token-budget",
                "5000",
                "--model",
                "toy-1",
                "--json",
            )
        )["api_key"]
        globex = json.loads(
            zc(db, "tenant", "create", "globex", "--rate-limit", "100", "--json")
        )["api_key"]
        initech = json.loads(zc(db, "tenant", "create", "initech", "--json"))["api_key"]
        with LMDBStores.open(db) as stores:
            TenantManager(stores.tenants, limits=stores.limits).set_budgets(
                "initech", [BUDGET]
            )
        price_file = folder / "prices.json"
        price_file.write_text(json.dumps(PRICES), encoding="utf-8")
        print(zc(db, "tenant", "list"), end="")

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        step(f"zerfoo-cloud serve toy_openai_app:app on {url}")
        env = dict(
            os.environ,
            ZERFOO_CLOUD_ADMIN_KEY=ADMIN_KEY,
            ZERFOO_CLOUD_METRICS_TOKEN=METRICS_TOKEN,
            ZERFOO_CLOUD_SESSION_SECRET=SESSION_SECRET,
        )
        server = subprocess.Popen(
            [
                CLI,
                "--db",
                str(db),
                "serve",
                "toy_openai_app:app",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--public-url",
                url,
                "--prices",
                str(price_file),
            ],
            cwd=HERE,
            env=env,
        )
        try:
            wait_ready(url, server)
            requests(url, acme, globex)
            budgeted(url, initech)
            console(url)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
        step("server stopped; every billing record and audit entry was flushed")

        step("zerfoo-cloud usage report")
        print(zc(db, "usage", "report"), end="")
        invoice(db, PriceTable.from_file(price_file))
        step("zerfoo-cloud audit verify")
        print(zc(db, "audit", "verify"), end="")
        print(f"\ndemo finished in {time.monotonic() - started:.1f} s")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def console(url: str) -> None:
    """
    Sign in to the web console as an operator, as a browser would, and say
    how to do it by hand.
    """
    step(f"the web console: {url}/console/login")
    with httpx.Client(base_url=url, timeout=10) as http:
        page = http.get("/console/login")
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        signed_in = http.post(
            "/console/login",
            data={"csrf": csrf, "admin_key": ADMIN_KEY},
            follow_redirects=True,
        )
        tenants = signed_in.text.count('data-testid="tenant-row"')
    print(
        f"signed in as an operator ({signed_in.status_code}): {tenants} tenants listed\n"
        f"to look around, open {url}/console/login while a server runs and paste\n"
        f"the admin key ({ADMIN_KEY}) into the Operators form; tenant admins\n"
        "sign in there through their SAML or OpenID Connect provider (docs/console.md)"
    )


if __name__ == "__main__":
    main()
