"""
``serve`` with prices from the store: a table stored while the server runs
(by ``zerfoo-cloud prices set`` or ``PUT /admin/prices``) is in force within
seconds, with no restart; with ``--prices FILE`` the file rules and the
admin API refuses changes.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from tests._serving import ROOT, free_port, serve_command
from tests.test_serve import chat, cli, running
from zerfoo_cloud import TokenMeter
from zerfoo_cloud.stores.lmdb import LMDBStores

pytestmark = pytest.mark.slow

ADMIN_KEY = "admin-key-for-the-price-tests"
TABLE = {
    "currency": "EUR",
    "models": {
        "toy-1": [
            {"effective_from": "2020-01-01T00:00:00Z", "input": "1.5", "output": "3"}
        ]
    },
}


def _until_refused(url: str, key: str) -> httpx.Response:
    deadline = time.monotonic() + 15
    while True:
        response = chat(url, key, model="toy-unpriced")
        if response.status_code != 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_a_table_set_while_serving_is_in_force_within_seconds(tmp_path: Path) -> None:
    """No table: requests are served unpriced; after 'prices set' an unpriced model is refused 403 and a priced one billed at the stored price."""
    db = tmp_path / "db"
    key = json.loads(cli(db, "tenant", "create", "acme", "--json").stdout)["api_key"]
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps(TABLE))
    port = free_port()
    args = serve_command(db, "toy_openai_app:app", "--port", str(port))
    with running(args, port, cwd=ROOT / "examples") as url:
        assert chat(url, key, model="toy-unpriced").status_code == 200
        done = cli(db, "prices", "set", str(prices))
        assert done.returncode == 0, done.stderr
        refused = _until_refused(url, key)
        served = chat(url, key)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_priced"
    assert served.status_code == 200
    usage = served.json()["usage"]
    with LMDBStores.open(db) as stores:
        now = datetime.now(timezone.utc)
        records = TokenMeter(stores.billing).query(
            "acme", now - timedelta(hours=1), now + timedelta(hours=1)
        )
    last = records[-1]
    expected = -(
        -(usage["prompt_tokens"] * 1_500_000 + usage["completion_tokens"] * 3_000_000)
        // 1_000_000
    )
    assert (last.model, last.cost, last.currency) == ("toy-1", expected, "EUR")
    assert records[0].currency == ""  # served before the table: unpriced


def test_put_admin_prices_reaches_the_serving_policy(tmp_path: Path) -> None:
    """PUT /admin/prices on a running server (If-Match "0"): the next requests are priced by it."""
    db = tmp_path / "db"
    key = json.loads(cli(db, "tenant", "create", "acme", "--json").stdout)["api_key"]
    port = free_port()
    args = serve_command(db, "toy_openai_app:app", "--port", str(port))
    env = {"ZERFOO_CLOUD_ADMIN_KEY": ADMIN_KEY}
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with running(args, port, cwd=ROOT / "examples", env=env) as url:
        shown = httpx.get(url + "/admin/prices", headers=auth)
        assert shown.headers["etag"] == '"0"'
        stored = httpx.put(
            url + "/admin/prices", headers={**auth, "If-Match": '"0"'}, json=TABLE
        )
        assert stored.status_code == 200, stored.text
        refused = _until_refused(url, key)
    assert refused.status_code == 403


def test_a_price_file_makes_the_stored_table_read_only(tmp_path: Path) -> None:
    """serve --prices FILE: GET /admin/prices shows the file's table; PUT answers 409 and stores nothing."""
    db = tmp_path / "db"
    cli(db, "tenant", "create", "acme")
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps(TABLE))
    port = free_port()
    args = serve_command(
        db, "toy_openai_app:app", "--port", str(port), "--prices", str(prices)
    )
    env = {"ZERFOO_CLOUD_ADMIN_KEY": ADMIN_KEY}
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with running(args, port, cwd=ROOT / "examples", env=env) as url:
        shown = httpx.get(url + "/admin/prices", headers=auth).json()
        changed = httpx.put(
            url + "/admin/prices", headers={**auth, "If-Match": '"0"'}, json=TABLE
        )
    assert shown["read_only"] is True
    assert shown["table"]["currency"] == "EUR"
    assert changed.status_code == 409
    assert changed.json()["error"]["code"] == "prices_read_only"
    assert json.loads(cli(db, "prices", "show", "--json").stdout)["version"] == 0
