"""
``zerfoo-cloud prices``: show the stored price table, replace it, add one
price.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.cli._context import _Context, _handle_errors
from zerfoo_cloud.cli._output import _emit, _json_option, render_table
from zerfoo_cloud.price_book import PriceBook
from zerfoo_cloud.pricing import (
    ModelPrice,
    PriceTable,
    StoredPrices,
    format_micros,
    parse_instant,
)

with needs_extra("cli", "the zerfoo-cloud command"):
    import click

#: What ``--from now`` means.
_NOW = "now"


@click.group()
def prices() -> None:
    """
    Show and change the price table every server of the store prices with.
    """


def _price_json(stored: StoredPrices) -> dict[str, Any]:
    table = stored.table
    return {
        "object": "price_table",
        "version": stored.version,
        "table": None if table is None else table.to_mapping(),
    }


def _price_text(stored: StoredPrices) -> str:
    table = stored.table
    if table is None:
        return "no price table stored (version 0): set one with 'zerfoo-cloud prices set FILE'"
    timelines = [*table.models.items()]
    if table.default:
        timelines.append(("(default)", table.default))
    rows = [
        [
            model,
            price.effective_from.isoformat(timespec="seconds").replace("+00:00", "Z"),
            format_micros(price.input),
            format_micros(price.output),
            format_micros(price.cached_input),
        ]
        for model, timeline in timelines
        for price in timeline
    ]
    heading = (
        f"price table version {stored.version}, in {table.currency} per million tokens"
    )
    return (
        heading
        + "\n"
        + render_table(["MODEL", "FROM", "INPUT", "OUTPUT", "CACHED INPUT"], rows)
    )


@prices.command("show")
@_json_option
@click.pass_obj
@_handle_errors
def prices_show(obj: _Context, as_json: bool) -> None:
    """
    Print the stored price table and its version.
    """
    with obj.stores() as stores:
        stored = stores.prices.read()
    _emit(as_json, _price_json(stored), _price_text(stored))


@prices.command("set")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False))
@click.option(
    "--if-version",
    type=click.IntRange(min=0),
    help="Change only if the stored table is still at this version "
    "(default: the version read just before).",
)
@_json_option
@click.pass_obj
@_handle_errors
def prices_set(obj: _Context, path: str, if_version: int | None, as_json: bool) -> None:
    """
    Replace the stored price table by the one of a price file (JSON or
    TOML). Every price already in force must stay as it is; new prices take
    effect now or later.
    """
    table = PriceTable.from_file(path)
    with obj.stores(create=True) as stores:
        book = PriceBook(stores.prices)
        expected = stores.prices.version() if if_version is None else if_version
        stored = book.replace(table, expected)
    _emit(
        as_json,
        _price_json(stored),
        f"price table version {stored.version} stored ({len(table.models)} models)",
    )


def _instant(value: str) -> datetime:
    # "now": a placeholder; the price book sets the moment of the change.
    if value == _NOW:
        return datetime.now(timezone.utc)
    return parse_instant(value, field="--from")


@prices.command("add")
@click.argument("model")
@click.option(
    "--input", "input_", required=True, help="Price of a million prompt tokens."
)
@click.option("--output", required=True, help="Price of a million completion tokens.")
@click.option(
    "--cached-input",
    help="Price of a million prompt tokens served from a cache (default: --input).",
)
@click.option(
    "--from",
    "from_",
    default=_NOW,
    show_default=True,
    metavar="DATE-TIME|now",
    help="When the price takes effect: ISO 8601 with an offset "
    "(2027-01-01T00:00:00Z), now or later.",
)
@_json_option
@click.pass_obj
@_handle_errors
def prices_add(
    obj: _Context,
    model: str,
    input_: str,
    output: str,
    cached_input: str | None,
    from_: str,
    as_json: bool,
) -> None:
    """
    Add one price of MODEL to the stored table, in force from --from on.
    """
    fields = {"effective_from": _instant(from_), "input": input_, "output": output}
    if cached_input is not None:
        fields["cached_input"] = cached_input
    price = ModelPrice.from_mapping(fields, field="price")
    with obj.stores() as stores:
        stored = PriceBook(stores.prices).add(model, price, from_now=from_ == _NOW)
    _emit(
        as_json,
        _price_json(stored),
        f"price table version {stored.version} stored: a price of {model} added",
    )
