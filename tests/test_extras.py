"""
The optional extras: the core installs and imports with attrs, cryptography,
lmdb and orjson alone, and each feature whose extra is missing says, in one
line, which extra to install.

Each check runs in a fresh interpreter, where an extra is made missing by
putting ``None`` in ``sys.modules`` for its modules (what Python does for a
module it must not import), so the test venv keeps every extra installed.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from tests._serving import run_python

ROOT = Path(__file__).resolve().parent.parent

#: The modules each extra brings, as ``import`` names.
EXTRA_MODULES = {
    "saml": ("lxml", "xmlsec"),
    "oidc": ("joserfc",),
    "gpu": ("pynvml",),
    "proxy": ("aiohttp",),
    "metrics": ("prometheus_client",),
    "server": ("uvicorn", "a2wsgi", "anyio"),
    "cli": ("click",),
    "web": ("starlette", "itsdangerous", "python_multipart"),
    "redis": ("redis", "hiredis"),
    "postgres": ("psycopg", "psycopg_binary", "psycopg_pool"),
}
OPTIONAL = tuple(name for names in EXTRA_MODULES.values() for name in names)

#: The core modules a user of the library alone imports.
CORE_MODULES = (
    "zerfoo_cloud",
    "zerfoo_cloud.stores.lmdb",
    "zerfoo_cloud.stores.memory",
    "zerfoo_cloud.tenants",
    "zerfoo_cloud.metering",
    "zerfoo_cloud.audit",
    "zerfoo_cloud.resources",
    "zerfoo_cloud.http",
    "zerfoo_cloud.http.asgi",
    "zerfoo_cloud.http.wsgi",
)


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_python(code, *args, timeout=120, cwd=ROOT, check=False)


def _blocking(extra: str) -> str:
    """Python code that makes *extra* missing in the interpreter it runs in."""
    return "".join(f"sys.modules[{name!r}] = None\n" for name in EXTRA_MODULES[extra])


def _names_the_extra(message: str, extra: str) -> bool:
    return (
        f"needs the '{extra}' extra" in message
        and f"pip install 'zerfoo-cloud[{extra}]'" in message
        and f"pip install -e '.[{extra}]'" in message
    )


def test_core_dependencies_are_exactly_the_four() -> None:
    """pyproject.toml's core dependencies are attrs, cryptography, lmdb and orjson."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {
        dep.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0]
        for dep in project["dependencies"]
    }
    assert names == {"attrs", "cryptography", "lmdb", "orjson"}
    extras = project["optional-dependencies"]
    assert {
        "saml",
        "oidc",
        "gpu",
        "proxy",
        "metrics",
        "server",
        "cli",
        "web",
        "redis",
        "postgres",
        "dev",
    } <= set(extras)
    assert "redis" in extras["dev"][0]
    assert "postgres" in extras["dev"][0]
    assert "web" in extras["server"][0]  # serve always mounts the admin API
    assert project["scripts"]["zerfoo-cloud"] == "zerfoo_cloud._console:main"


def test_importing_the_core_loads_no_extra() -> None:
    """The core modules import without loading any optional module."""
    result = _run(
        f"""
        import importlib, sys
        for module in {CORE_MODULES!r}:
            importlib.import_module(module)
        print(sorted(m for m in {OPTIONAL!r} if m in sys.modules))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_core_works_with_every_extra_missing() -> None:
    """Tenants, metering and audit on LMDB run with no optional module importable."""
    blocked = "".join(_blocking(extra) for extra in EXTRA_MODULES)
    result = _run(
        "import sys, tempfile\n"
        + blocked
        + textwrap.dedent(
            """
            from datetime import datetime, timezone
            from zerfoo_cloud import (AuditEntry, AuditLogger, TenantConfig,
                                      TenantManager, TokenMeter)
            from zerfoo_cloud.stores.lmdb import LMDBStores
            with tempfile.TemporaryDirectory() as folder:
                stores = LMDBStores.open(folder)
                tenants = TenantManager(stores.tenants, limits=stores.limits)
                tenants.create(TenantConfig("acme", "sk-test-key", 60, 1000))
                assert tenants.get("acme").allow_request()
                meter = TokenMeter(stores.billing)
                meter.record("acme", 3, 4, model="m")
                meter.flush()
                start = datetime(2000, 1, 1, tzinfo=timezone.utc)
                end = datetime(2100, 1, 1, tzinfo=timezone.utc)
                print(len(meter.query("acme", start, end)))
                meter.close()
                AuditLogger(stores.audit).close()
                stores.close()
            """
        )
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


FEATURES = [
    ("saml", "from zerfoo_cloud import SAMLProvider"),
    ("saml", "import zerfoo_cloud; zerfoo_cloud.parse_saml_metadata(b'')"),
    ("saml", "from zerfoo_cloud.sso import SAMLProvider"),
    ("saml", "import zerfoo_cloud.sso.provider"),
    ("oidc", "from zerfoo_cloud.sso.oidc import OIDCProvider"),
    ("gpu", "from zerfoo_cloud import ResourceManager; ResourceManager.from_gpu()"),
    ("proxy", "from zerfoo_cloud.http.proxy import UpstreamProxy"),
    ("metrics", "from zerfoo_cloud.metrics import Metrics"),
    ("web", "from zerfoo_cloud.http.admin import AdminAPI"),
    ("web", "from zerfoo_cloud.http.admin import SessionSigner"),
    ("redis", "from zerfoo_cloud.stores.redis import RedisLimiterStore"),
    ("redis", "import zerfoo_cloud.stores.redis.replay"),
    ("postgres", "from zerfoo_cloud.stores.postgres import PostgresStores"),
]


@pytest.mark.parametrize(("extra", "use"), FEATURES)
def test_a_missing_extra_is_named_in_one_line(extra: str, use: str) -> None:
    """Using a feature whose extra is missing raises an error naming the extra."""
    result = _run(
        "import sys\n"
        + _blocking(extra)
        + textwrap.dedent(
            f"""
            from zerfoo_cloud.errors import CloudError
            try:
                {use}
            except CloudError as exc:
                print(type(exc).__name__, isinstance(exc, ImportError))
                print(exc)
            """
        )
    )
    assert result.returncode == 0, result.stderr
    kind, message = result.stdout.rstrip("\n").split("\n")
    assert _names_the_extra(message, extra), message
    if extra == "gpu":  # callers that fall back on GPUUnavailableError keep working
        assert kind == "GPUUnavailableError False"
    else:
        assert kind == "MissingExtraError True"


def test_the_inference_path_never_loads_the_web_extra() -> None:
    """The inference middleware, the proxy and CloudServer import and serve without Starlette."""
    result = _run(
        "import sys\n"
        + _blocking("web")
        + textwrap.dedent(
            """
            import asyncio
            from zerfoo_cloud import CloudServer, TenantConfig, TenantManager, TokenMeter
            from zerfoo_cloud.http.proxy import UpstreamProxy
            from zerfoo_cloud.stores.memory import MemoryBillingStore

            async def app(scope, receive, send):
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": b"{}"})

            tenants = TenantManager()
            tenants.create(TenantConfig("acme", "sk-test-key-0123456789", 60, 1000))
            meter = TokenMeter(MemoryBillingStore())
            sent = []

            async def receive():
                return {"type": "http.request", "body": b""}

            async def send(message):
                sent.append(message)

            scope = {"type": "http", "method": "GET", "path": "/v1/models",
                     "raw_path": b"/v1/models", "query_string": b"", "headers":
                     [(b"authorization", b"Bearer sk-test-key-0123456789")]}
            server = CloudServer(app, tenants, meter, interface="asgi")
            asyncio.run(server.handler()(scope, receive, send))
            server.close()
            meter.close()
            loaded = [m for m in ("starlette", "itsdangerous") if sys.modules.get(m)]
            print(sent[0]["status"], UpstreamProxy.__name__, loaded)
            """
        )
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "200 UpstreamProxy []"


def _command(blocked: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return _run(
        "import sys\n"
        + blocked
        + "from zerfoo_cloud._console import main\n"
        + "sys.exit(main(sys.argv[1:]))\n",
        *argv,
    )


COMMANDS = [
    ("cli", ["tenant", "list"]),
    ("server", ["serve", "examples.demo:app"]),
    ("proxy", ["serve", "--upstream", "http://127.0.0.1:9/v1"]),
    (
        "metrics",
        ["serve", "--upstream", "http://127.0.0.1:9/v1", "--metrics-port", "0"],
    ),
    (
        "saml",
        [
            "serve",
            "--upstream",
            "http://127.0.0.1:9/v1",
            "--saml-metadata",
            "acme=idp.xml",
        ],
    ),
    ("web", ["serve", "--upstream", "http://127.0.0.1:9/v1"]),
    ("postgres", ["db", "upgrade"]),
]


@pytest.mark.parametrize(("extra", "argv"), COMMANDS)
def test_the_command_names_a_missing_extra_without_a_traceback(
    extra: str, argv: list[str], tmp_path: Path
) -> None:
    """The zerfoo-cloud command prints one line naming the extra and exits 1."""
    result = _command(_blocking(extra), "--db", str(tmp_path), *argv)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert _names_the_extra(lines[0], extra), lines[0]
    assert not (tmp_path / "data.mdb").exists()  # it failed before serving


def test_the_command_runs_without_the_server_extra(tmp_path: Path) -> None:
    """Commands other than serve need only the cli extra."""
    result = _command(
        "".join(_blocking(extra) for extra in EXTRA_MODULES if extra != "cli"),
        "--db",
        str(tmp_path),
        "tenant",
        "create",
        "acme",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert '"acme"' in result.stdout


def test_the_admin_api_and_roles_need_no_oidc_extra() -> None:
    """Without joserfc the admin API (with SAML and sessions) and role maps still import."""
    result = _run(
        "import sys\n"
        + _blocking("oidc")
        + "from zerfoo_cloud.http.admin import AdminAPI\n"
        "from zerfoo_cloud.sso import Role, RoleMap\n"
        "print(RoleMap({'a': 'admin'}).role_for(['a']) is Role.ADMIN)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
