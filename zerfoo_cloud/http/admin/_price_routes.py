"""
The price operations of the admin API: read the price table, replace it
(``If-Match`` on its version), add one price (each runs in a worker
thread).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from zerfoo_cloud.http.admin._inputs import json_object
from zerfoo_cloud.http.admin._params import check_fields
from zerfoo_cloud.http.admin._responses import HTTPProblem, json_response
from zerfoo_cloud.pricing import ModelPrice, PriceTable
from zerfoo_cloud.pricing.model_price import PRICE_KEYS

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from zerfoo_cloud.http.admin._access import Op
    from zerfoo_cloud.http.admin._audit_trail import CallRecord
    from zerfoo_cloud.price_book import PriceBook
    from zerfoo_cloud.pricing import StoredPrices

__all__ = ["PriceOperations", "etag_of"]

#: An entity tag of the price table: its version, quoted.
_ETAG = re.compile(r'"(0|[1-9][0-9]{0,17})"')


def etag_of(version: int) -> str:
    """
    The entity tag of version *version* of the price table: ``"3"``.
    """
    return f'"{version}"'


def _answer(status: int, stored: StoredPrices, book: PriceBook) -> Response:
    table = stored.table
    return json_response(
        status,
        {
            "object": "price_table",
            "version": stored.version,
            "read_only": book.read_only,
            "table": None if table is None else table.to_mapping(),
        },
        headers=[("etag", etag_of(stored.version))],
    )


def _expected_version(request: Request) -> int:
    values = request.headers.getlist("if-match")
    if not values:
        msg = (
            "send If-Match with the ETag of the table the change is based on "
            '(GET /admin/prices; "0" before the first table)'
        )
        raise HTTPProblem(428, "precondition_required", msg, param="If-Match")
    match = _ETAG.fullmatch(values[0].strip()) if len(values) == 1 else None
    if match is None:
        msg = 'If-Match holds one ETag of the price table, such as "3"'
        raise HTTPProblem(400, "invalid_header", msg, param="If-Match")
    return int(match.group(1))


class PriceOperations:
    """
    ``/admin/prices`` on *book* (``None``: the routes answer 404).
    """

    def __init__(self, book: PriceBook | None) -> None:
        self.book = book

    def _book(self) -> PriceBook:
        if self.book is None:
            msg = "this server has no price table to manage"
            raise HTTPProblem(404, "prices_not_configured", msg)
        return self.book

    def show(
        self, op: Op, request: Request, body: bytes, record: CallRecord
    ) -> Response:
        """
        ``GET /admin/prices``: the table in force, its version (also the
        ``ETag``) and whether it is read-only.
        """
        book = self._book()
        return _answer(200, book.current(), book)

    def replace(
        self, op: Op, request: Request, body: bytes, record: CallRecord
    ) -> Response:
        """
        ``PUT /admin/prices``: a whole new table, based on the version
        ``If-Match`` names; 412 when it changed since, 409 when read-only,
        400 (nothing changed) when the table is invalid or changes the past.
        """
        book = self._book()
        expected = _expected_version(request)
        table = PriceTable.from_mapping(json_object(body))
        stored = book.replace(table, expected)
        record.resource = f"prices/v{stored.version}"
        return _answer(200, stored, book)

    def add(
        self, op: Op, request: Request, body: bytes, record: CallRecord
    ) -> Response:
        """
        ``POST /admin/prices``: one price for one model (``model`` and the
        fields of a price; ``effective_from`` may be ``"now"``), added to
        the table in force (201).
        """
        book = self._book()
        data: dict[str, Any] = json_object(body)
        check_fields(data, ("model", *PRICE_KEYS), ("model", *PRICE_KEYS[:3]))
        model = data.pop("model")
        if not isinstance(model, str):
            raise HTTPProblem(
                400, "invalid_field", "model must be a model name", param="model"
            )
        # "now": the moment the change is made, on the server's clock.
        from_now = data.get("effective_from") == "now"
        if from_now:
            data["effective_from"] = datetime.now(timezone.utc)
        price = ModelPrice.from_mapping(data, field="price")
        stored = book.add(model, price, from_now=from_now)
        record.resource = f"prices/v{stored.version}"
        return _answer(201, stored, book)
