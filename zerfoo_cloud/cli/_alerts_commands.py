"""
``zerfoo-cloud alerts``: list pending deliveries and dead letters, retry
dead letters, send a test alert, and make a signing secret.

The commands work on this host's alert outbox (`zerfoo_cloud.alerts.alerts_folder`
of ``--db``, or ``--outbox``), while servers use it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.alerts import (
    AlertEvent,
    Delivery,
    RetryPolicy,
    WebhookEndpoint,
    WebhookSecret,
    alerts_folder,
    display_url,
    load_secrets,
    post,
    random_event_id,
    sign,
)
from zerfoo_cloud.cli._context import DB_ENV, _Context, _handle_errors
from zerfoo_cloud.cli._output import _emit, _json_option, render_table
from zerfoo_cloud.stores.alerts import LMDBAlertOutbox

with needs_extra("cli", "the zerfoo-cloud command"):
    import click


def _folder(obj: _Context, outbox: str | None) -> Path:
    if outbox is not None:
        return Path(outbox)
    if not obj.db:
        msg = (
            f"no store given: pass --db PATH|URL (or set {DB_ENV}), or --outbox FOLDER"
        )
        raise click.UsageError(msg)
    return alerts_folder(obj.db)


@contextmanager
def _outbox(obj: _Context, outbox: str | None) -> Iterator[LMDBAlertOutbox]:
    folder = _folder(obj, outbox)
    if not (folder / "data.mdb").exists():
        msg = (
            f"no alert outbox at {str(folder)!r}: no server has sent alerts for "
            "this store on this host (check --db or --outbox)"
        )
        raise click.ClickException(msg)
    with LMDBAlertOutbox.open(folder) as opened:
        yield opened


_outbox_option = click.option(
    "--outbox",
    metavar="FOLDER",
    help="The alert outbox folder (default: the one of --db on this host).",
)


@click.group()
def alerts() -> None:
    """
    Webhook alerts: pending deliveries, dead letters, tests and secrets.
    """


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def _view(delivery: Delivery) -> dict[str, object]:
    last = delivery.attempts[-1] if delivery.attempts else None
    return {
        "event_id": delivery.event.id,
        "type": delivery.event.type,
        "tenant_id": delivery.event.tenant_id,
        "url": display_url(delivery.url),
        "state": "dead" if delivery.dead else "pending",
        "queued_at": _iso(delivery.queued_at),
        "next_at": None if delivery.dead else _iso(delivery.next_at),
        "attempts": [{"at": _iso(a.at), "result": a.result} for a in delivery.attempts],
        "last_result": None if last is None else last.result,
    }


def _table(views: Sequence[dict[str, object]]) -> str:
    return render_table(
        ["EVENT", "TYPE", "TENANT", "URL", "STATE", "ATTEMPTS", "LAST", "NEXT"],
        [
            [
                str(v["event_id"]),
                str(v["type"]),
                str(v["tenant_id"]) or "-",
                str(v["url"]),
                str(v["state"]),
                str(len(v["attempts"])),  # type: ignore[arg-type]
                str(v["last_result"] or "-"),
                str(v["next_at"] or "-"),
            ]
            for v in views
        ],
    )


@alerts.command("list")
@click.option("--dead", is_flag=True, help="List the dead letters only.")
@_outbox_option
@_json_option
@click.pass_obj
@_handle_errors
def alerts_list(obj: _Context, dead: bool, outbox: str | None, as_json: bool) -> None:
    """
    List the deliveries waiting (and the dead letters), oldest first.
    """
    with _outbox(obj, outbox) as opened:
        found = (
            opened.dead_letters() if dead else opened.pending() + opened.dead_letters()
        )
        counts = opened.counts()
    views = [_view(d) for d in found]
    _emit(
        as_json,
        {"counts": counts._asdict(), "deliveries": views},
        f"{counts.pending} pending, {counts.dead} dead, {counts.delivered} delivered\n\n"
        + _table(views),
    )


@alerts.command("retry")
@click.argument("event_id", required=False)
@click.option("--all", "every", is_flag=True, help="Retry every dead letter.")
@_outbox_option
@click.pass_obj
@_handle_errors
def alerts_retry(
    obj: _Context, event_id: str | None, every: bool, outbox: str | None
) -> None:
    """
    Make the dead letters of EVENT_ID (or --all) pending again: a running
    server sends them at once.
    """
    if (event_id is None) == (not every):
        msg = "give an EVENT_ID or --all, not both or neither"
        raise click.UsageError(msg)
    with _outbox(obj, outbox) as opened:
        moved = opened.retry(event_id, time.time())
    if event_id is not None and not moved:
        msg = f"no dead letter of event {event_id[:100]!r}"
        raise click.ClickException(msg)
    click.echo(f"{moved} dead letter(s) pending again")


@alerts.command("send-test")
@click.argument("url")
@click.option(
    "--webhook-secret-file",
    metavar="FILE",
    help="Read the secret(s) from this file, not from ZERFOO_CLOUD_WEBHOOK_SECRET.",
)
@click.option(
    "--tenant", "tenant_id", default="", help="The tenant id the event names."
)
@click.option(
    "--timeout",
    type=click.FloatRange(0, min_open=True),
    default=10.0,
    show_default=True,
)
@click.pass_obj
@_handle_errors
def alerts_send_test(
    obj: _Context,
    url: str,
    webhook_secret_file: str | None,
    tenant_id: str,
    timeout: float,
) -> None:
    """
    POST one signed test event (type "test") to URL now and print the answer;
    exit 1 unless it is a 2xx. Nothing is queued.
    """
    del obj
    endpoint = WebhookEndpoint(url)
    secrets = load_secrets(None, webhook_secret_file)
    now = time.time()
    event = AlertEvent(
        random_event_id(), "test", now, tenant_id, {"message": "a test alert"}
    )
    body = event.body()
    policy = RetryPolicy(timeout=timeout)
    result = post(
        endpoint.url, body, sign(secrets, event.id, int(now), body), policy.timeout
    )
    shown = display_url(endpoint.url)
    if not (result.isdigit() and 200 <= int(result) < 300):  # noqa: PLR2004
        msg = f"the test alert {event.id} to {shown} failed: {result}"
        raise click.ClickException(msg)
    click.echo(f"the test alert {event.id} to {shown} was delivered: {result}")


@alerts.command("new-secret")
def alerts_new_secret() -> None:
    """
    Print a new webhook signing secret (whsec_…) for ZERFOO_CLOUD_WEBHOOK_SECRET
    and for the receivers.
    """
    click.echo(WebhookSecret.generate().reveal())
