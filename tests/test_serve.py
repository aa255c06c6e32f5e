"""
`zerfoo-cloud serve` as a real process: the CLI, the server and the reverse proxy together.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import openai
import pytest

from tests._serving import (
    ROOT,
    free_port,
    run_cli,
    serve_command,
    spawn,
    stop,
    uvicorn_command,
)
from zerfoo_cloud import InvalidConfigError, TokenMeter
from zerfoo_cloud.serve import ServeConfig, load_app
from zerfoo_cloud.stores.lmdb import LMDBStores

pytestmark = pytest.mark.slow

#: Run the zerfoo-cloud command as a process (other test modules import it).
cli = run_cli


@contextmanager
def running(
    args: list[str], port: int, *, cwd: Path, env: dict[str, str] | None = None
) -> Iterator[str]:
    """
    Start a server process, wait until /healthz (or any answer) responds, stop it after.
    """
    log = (cwd / f".server-{port}.log").open("w+")
    proc = spawn(args, cwd=cwd, out=log, env=env, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"server did not start: {log.read()}")
                time.sleep(0.1)
        yield url
    finally:
        stop(proc)
        log.close()
        Path(log.name).unlink(missing_ok=True)


def chat(url: str, key: str, **kw: object) -> httpx.Response:
    """
    One small chat completion request.
    """
    body = {
        "model": "toy-1",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 4,
        **kw,
    }
    return httpx.post(
        url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json=body,
        timeout=30,
    )


def billing(db: Path, tenant_id: str) -> list[tuple[int, int]]:
    """
    The (input, output) tokens of every billing record of the tenant.
    """
    with LMDBStores.open(db) as stores:
        now = datetime.now(timezone.utc)
        records = TokenMeter(stores.billing).query(
            tenant_id, now - timedelta(hours=1), now + timedelta(hours=1)
        )
    return [(r.input_tokens, r.output_tokens) for r in records]


def test_tenants_created_and_deleted_by_the_cli_while_serving(tmp_path: Path) -> None:
    """A tenant created by the CLI can call the running server at once; a deleted one cannot."""
    db = tmp_path / "db"
    assert cli(db, "tenant", "create", "seed").returncode == 0
    port = free_port()
    args = serve_command(db, "toy_openai_app:app", "--port", str(port))
    with running(args, port, cwd=ROOT / "examples") as url:
        created = cli(db, "tenant", "create", "acme", "--rate-limit", "100", "--json")
        key = json.loads(created.stdout)["api_key"]
        response = chat(url, key)
        assert response.status_code == 200, response.text
        usage = response.json()["usage"]
        assert cli(db, "tenant", "delete", "acme", "--yes").returncode == 0
        deadline = time.monotonic() + 1.0
        served = 1  # a worker may serve a deleted key from its cache for cache_ttl
        while (status := chat(url, key).status_code) != 401:
            assert status == 200
            served += 1
            assert time.monotonic() < deadline, (
                "a deleted key kept working for over a second"
            )
            time.sleep(0.05)
    expected = (usage["prompt_tokens"], usage["completion_tokens"])
    assert billing(db, "acme") == [expected] * served
    report = cli(
        db, "usage", "report", "--tenant", "acme", "--by", "total", "--format", "json"
    )
    assert json.loads(report.stdout)[0]["requests"] == served
    verified = cli(db, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_reverse_proxy_streams_and_bills(tmp_path: Path) -> None:
    """serve --upstream streams a real upstream's answer and bills the usage the client saw."""
    db = tmp_path / "db"
    key = json.loads(cli(db, "tenant", "create", "acme", "--json").stdout)["api_key"]
    up_port, port = free_port(), free_port()
    upstream = uvicorn_command("toy_openai_app:app", up_port, "--log-level", "warning")
    server = serve_command(
        db, "--upstream", f"http://127.0.0.1:{up_port}/v1", "--port", str(port)
    )
    with (
        running(upstream, up_port, cwd=ROOT / "examples"),
        running(server, port, cwd=tmp_path) as url,
    ):
        with openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0) as client:
            stream = client.chat.completions.create(
                model="toy-1",
                messages=[{"role": "user", "content": "tell me a story"}],
                max_tokens=6,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = list(stream)
        usage = chunks[-1].usage
        assert usage is not None
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text
        with (
            openai.OpenAI(
                base_url=url + "/v1", api_key="wrong", max_retries=0
            ) as wrong,
            pytest.raises(openai.AuthenticationError),
        ):
            wrong.models.list()
    assert billing(db, "acme") == [(usage.prompt_tokens, usage.completion_tokens)]


def test_upstream_dying_mid_stream_is_billed_for_what_was_sent(tmp_path: Path) -> None:
    """An upstream that dies mid-stream ends the client's stream with an error and bills what it sent."""
    db = tmp_path / "db"
    key = json.loads(cli(db, "tenant", "create", "acme", "--json").stdout)["api_key"]
    up_port, port = free_port(), free_port()
    upstream = uvicorn_command(
        "tests._dying_upstream:app", up_port, "--log-level", "critical"
    )
    server = serve_command(
        db,
        "--upstream",
        f"http://127.0.0.1:{up_port}",
        "--port",
        str(port),
        "--log-level",
        "critical",
    )
    with (
        running(upstream, up_port, cwd=ROOT),
        running(server, port, cwd=tmp_path) as url,
    ):
        received: list[str] = []
        request = {
            "model": "toy-1",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        }
        headers = {"Authorization": f"Bearer {key}"}
        with pytest.raises(httpx.HTTPError):  # noqa: PT012, SIM117 - it fails mid-iteration
            with httpx.stream(
                "POST",
                url + "/v1/chat/completions",
                headers=headers,
                json=request,
                timeout=30,
            ) as response:
                assert response.status_code == 200
                received.extend(
                    line for line in response.iter_lines() if line.startswith("data:")
                )
        assert len(received) == 3
        time.sleep(0.5)
    records = billing(db, "acme")
    assert len(records) == 1
    assert records[0][1] == 3, "one completion token per streamed chunk sent"


def test_serve_config_is_checked() -> None:
    """ServeConfig needs exactly one of app and upstream, and SAML needs a public URL."""
    with pytest.raises(InvalidConfigError):
        ServeConfig(db="x")
    with pytest.raises(InvalidConfigError):
        ServeConfig(db="x", app="a:b", upstream="http://u")
    with pytest.raises(InvalidConfigError):
        ServeConfig(db="x", app="a:b", saml={"acme": "m.xml"})
    config = ServeConfig(
        db="x", upstream="http://u", saml={"acme": "m.xml"}, public_url="https://p"
    )
    assert (
        ServeConfig.from_env({"ZERFOO_CLOUD_SERVE_CONFIG": config.to_env()}) == config
    )
    with pytest.raises(InvalidConfigError):
        ServeConfig.from_env({})
    with pytest.raises(InvalidConfigError):
        ServeConfig.from_env({"ZERFOO_CLOUD_SERVE_CONFIG": "{"})


@pytest.mark.parametrize(
    "spec", ["nocolon", "no_such_module_xyz:app", "json:no_such_attr", ":x"]
)
def test_load_app_errors(spec: str) -> None:
    """Bad app specs give InvalidConfigError with a clear message."""
    with pytest.raises(InvalidConfigError):
        load_app(spec)


def test_serve_refuses_bad_input(tmp_path: Path) -> None:
    """serve without an app, with a bad upstream URL or a bad import fails fast with one line."""
    db = tmp_path / "db"
    cli(db, "tenant", "create", "acme")
    done = cli(db, "serve")
    assert done.returncode != 0
    assert "not both or neither" in done.stderr
    done = cli(db, "serve", "--upstream", "ftp://x")
    assert "http:// or https://" in done.stderr
    done = cli(db, "serve", "no_such_module_xyz:app")
    assert "cannot import module" in done.stderr
    assert "Traceback" not in done.stderr


def idp_metadata_xml(cert_b64: str) -> str:
    """
    Minimal IdP metadata with one signing certificate and a redirect sign-on URL.
    """
    return (
        '<md:EntityDescriptor entityID="https://idp.example.com" '
        'xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        'xmlns:ds="http://www.w3.org/2000/09/xmldsig#">'
        '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>'
        f"{cert_b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
        '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
        'Location="https://idp.example.com/sso"/>'
        "</md:IDPSSODescriptor></md:EntityDescriptor>"
    )


def test_built_service_has_saml_login_admin_and_metrics(tmp_path: Path) -> None:
    """build_app wires SAML login, the admin key from the environment and /metrics."""
    import asyncio

    from tests.sso._idp import make_keypair
    from zerfoo_cloud.serve import build_app

    keys = make_keypair("idp")
    metadata = tmp_path / "idp.xml"
    metadata.write_text(idp_metadata_xml(keys.cert_b64))
    db = tmp_path / "db"
    cli(db, "tenant", "create", "acme")
    config = ServeConfig(
        db=str(db),
        upstream="http://127.0.0.1:9",
        saml={"acme": str(metadata)},
        public_url="https://api.example.com",
        metrics=False,
    )
    env = {
        "ZERFOO_CLOUD_SESSION_SECRET": "s" * 32,
        "ZERFOO_CLOUD_ADMIN_KEY": "admin-key-for-the-test",
    }
    with pytest.raises(InvalidConfigError, match="SESSION_SECRET"):
        build_app(config, {"ZERFOO_CLOUD_SESSION_SECRET": "short"})
    app = build_app(config, env)

    async def calls() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test"
        ) as client:
            return [
                await client.get("/sso/saml/acme/login"),
                await client.get("/sso/saml/acme/metadata"),
                await client.get(
                    "/admin/tenants",
                    headers={"Authorization": "Bearer admin-key-for-the-test"},
                ),
                await client.get(
                    "/admin/tenants", headers={"Authorization": "Bearer wrong"}
                ),
            ]

    login, sp_metadata, admin, denied = asyncio.run(calls())
    assert login.status_code == 302
    assert login.headers["location"].startswith(
        "https://idp.example.com/sso?SAMLRequest="
    )
    assert b"https://api.example.com/sso/saml/acme/acs" in sp_metadata.content
    assert admin.status_code == 200
    assert denied.status_code == 401
    asyncio.run(app.close())


def test_serve_with_prices_bills_cost_and_refuses_unpriced_models(
    tmp_path: Path,
) -> None:
    """serve --prices: a priced model is billed its cost at the price of the moment; another is refused 403 and never billed; the invoice total is the records' costs."""
    db = tmp_path / "db"
    prices = tmp_path / "prices.toml"
    prices.write_text(
        'currency = "EUR"\n'
        '[[models."toy-1"]]\n'
        "effective_from = 2020-01-01T00:00:00Z\n"
        'input = "1.5"\n'
        'output = "3"\n'
    )
    key = json.loads(cli(db, "tenant", "create", "acme", "--json").stdout)["api_key"]
    port = free_port()
    args = serve_command(
        db, "toy_openai_app:app", "--port", str(port), "--prices", str(prices)
    )
    with running(args, port, cwd=ROOT / "examples") as url:
        served = chat(url, key)
        refused = chat(url, key, model="toy-unpriced")
    assert served.status_code == 200, served.text
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_priced"
    usage = served.json()["usage"]
    with LMDBStores.open(db) as stores:
        now = datetime.now(timezone.utc)
        (record,) = TokenMeter(stores.billing).query(
            "acme", now - timedelta(hours=1), now + timedelta(hours=1)
        )
    expected = -(
        -(usage["prompt_tokens"] * 1_500_000 + usage["completion_tokens"] * 3_000_000)
        // 1_000_000
    )
    assert (record.model, record.cost, record.currency) == ("toy-1", expected, "EUR")
    month = record.timestamp.strftime("%Y-%m")
    invoice = json.loads(cli(db, "invoice", "acme", "--month", month).stdout)
    assert invoice["total_micros"] == expected
    assert invoice["currency"] == "EUR"


def test_serve_refuses_a_bad_price_file(tmp_path: Path) -> None:
    """A missing or malformed price file stops serve before it starts, in one line."""
    db = tmp_path / "db"
    cli(db, "tenant", "create", "acme")
    bad = tmp_path / "prices.json"
    bad.write_text('{"currency": "usd", "models": {}}')
    for path, says in ((tmp_path / "none.json", "cannot read"), (bad, "capitals")):
        done = cli(db, "serve", "toy_openai_app:app", "--prices", str(path))
        assert done.returncode == 1
        assert says in done.stderr
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_built_service_has_oidc_login(tmp_path: Path) -> None:
    """build_app reads the --oidc file: each tenant's and the operators' login redirect to the provider."""
    import asyncio

    from tests._oidc_provider import OIDCTestProvider
    from zerfoo_cloud.serve import build_app

    db = tmp_path / "db"
    cli(db, "tenant", "create", "acme")
    with OIDCTestProvider() as idp:
        providers = [
            {
                "tenant": "acme",
                "issuer": idp.issuer,
                "client_id": idp.client_id,
                "client_secret_env": "ACME_OIDC_SECRET",
                "roles": {"zc-admins": "admin"},
            },
            {
                "operators": True,
                "issuer": idp.issuer,
                "client_id": idp.client_id,
                "client_secret_env": "ACME_OIDC_SECRET",
                "roles": {"zc-ops": "operator"},
            },
        ]
        oidc = tmp_path / "oidc.json"
        oidc.write_text(json.dumps({"providers": providers}))
        config = ServeConfig(
            db=str(db),
            upstream="http://127.0.0.1:9",
            oidc=str(oidc),
            public_url="https://api.example.com",
            metrics=False,
        )
        assert (
            ServeConfig.from_env({"ZERFOO_CLOUD_SERVE_CONFIG": config.to_env()})
            == config
        )
        env = {
            "ZERFOO_CLOUD_SESSION_SECRET": "s" * 32,
            "ACME_OIDC_SECRET": idp.client_secret or "",
        }
        with pytest.raises(InvalidConfigError, match="SESSION_SECRET"):
            build_app(config, {"ACME_OIDC_SECRET": "x"})
        with pytest.raises(InvalidConfigError, match="ACME_OIDC_SECRET"):
            build_app(config, {"ZERFOO_CLOUD_SESSION_SECRET": "s" * 32})
        app = build_app(config, env)

        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://api.example.com"
        )
        for name in ("acme", "_operators"):
            login = asyncio.run(client.get(f"/sso/oidc/{name}/login"))
            assert login.status_code == 302, login.text
            location = login.headers["location"]
            assert location.startswith(f"{idp.issuer}/authorize?")
            assert (
                "redirect_uri=https%3A%2F%2Fapi.example.com%2Fsso%2Foidc%2F" in location
            )
        asyncio.run(app.close())
    with pytest.raises(InvalidConfigError, match="public-url"):
        ServeConfig(db="x", app="a:b", oidc=str(oidc))


def test_serve_refuses_a_bad_oidc_file(tmp_path: Path) -> None:
    """serve --oidc checks the file first: one line, no traceback, no secret shown."""
    db = tmp_path / "db"
    cli(db, "tenant", "create", "acme")
    bad = tmp_path / "oidc.toml"
    bad.write_text(
        "[[providers]]\n"
        'tenant = "acme"\n'
        'issuer = "https://idp.example.com"\n'
        'client_id = "zc"\n'
        'algorithms = ["HS256"]\n'
        'client_secret_env = "ACME_OIDC_SECRET"\n'
        '[providers.roles]\n"zc" = "admin"\n'
    )
    serve = ["serve", "--upstream", "http://127.0.0.1:9", "--oidc", str(bad)]
    done = cli(db, *serve)
    assert done.returncode != 0
    assert "--oidc needs --public-url" in done.stderr
    serve += ["--public-url", "https://api.example.com"]
    done = cli(db, *serve)
    assert done.returncode != 0
    assert "client_secret_env: 'ACME_OIDC_SECRET' is not set" in done.stderr
    secret = tmp_path / "secret"
    secret.write_text("a-client-secret")
    bad.write_text(
        bad.read_text().replace(
            'client_secret_env = "ACME_OIDC_SECRET"',
            f'client_secret_file = "{secret}"',
        )
    )
    done = cli(db, *serve)
    assert done.returncode != 0
    assert "algorithms: must be some of" in done.stderr
    assert "a-client-secret" not in done.stderr
    assert "Traceback" not in done.stderr
