"""
``zerfoo-cloud tenant sign-out``: sets the tenant record's stamps on a real
LMDB store, audited; bad input is a one-line error that changes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli import run
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.tenants.sign_out import MAX_SUBJECT_LENGTH


def _record_stamps(db: Path) -> tuple[float, tuple[tuple[str, float], ...]]:
    with LMDBStores.open(db) as stores:
        record = stores.tenants.get("acme")
    assert record is not None
    return record.sessions_not_before, record.subjects_not_before


def test_sign_out_everyone_and_one_person(tmp_path: Path) -> None:
    """Without --user the tenant's stamp is set; with it, only that person's."""
    db = tmp_path / "db"
    run(db, "tenant", "create", "acme")
    code, out = run(db, "tenant", "sign-out", "acme", "--user", "alice", "--json")
    assert code == 0, out
    shown = json.loads(out)
    assert shown["subject"] == "alice"
    tenant_stamp, subjects = _record_stamps(db)
    assert tenant_stamp == 0.0
    assert subjects == (("alice", shown["not_before"]),)
    code, out = run(db, "tenant", "sign-out", "acme")
    assert code == 0, out
    assert "signed everyone out of tenant 'acme'" in out
    assert _record_stamps(db)[0] > 0
    code, out = run(db, "audit", "query", "--tenant", "acme", "--format", "json")
    resources = [e["resource"] for e in json.loads(out)]
    assert "sessions of alice signed out by cli" in resources
    assert "sessions signed out by cli" in resources


#: Bad sign-outs and the line each gets.
BAD_SIGN_OUTS = [
    (("tenant", "sign-out", "ghost"), "tenant 'ghost' not found"),
    (
        ("tenant", "sign-out", "acme", "--user", "x" * (MAX_SUBJECT_LENGTH + 1)),
        f"the subject must be 1 to {MAX_SUBJECT_LENGTH} characters",
    ),
    (
        ("tenant", "sign-out", "acme", "--user", ""),
        f"the subject must be 1 to {MAX_SUBJECT_LENGTH} characters",
    ),
]


def test_bad_sign_outs_are_one_line_errors_that_change_nothing(tmp_path: Path) -> None:
    """An unknown tenant or a bad subject: one line, exit 1, no stamp."""
    db = tmp_path / "db"
    run(db, "tenant", "create", "acme")
    results = {args[-1]: run(db, *args) for args, _ in BAD_SIGN_OUTS}
    for args, message in BAD_SIGN_OUTS:
        code, out = results[args[-1]]
        assert (code, out.strip().splitlines()) == (1, [f"Error: {message}"]), out
    assert _record_stamps(db) == (0.0, ())
