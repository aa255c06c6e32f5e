"""
Prices and money: what each request costs, in integers of micro-units.

A `PriceTable` holds, per model, prices per million tokens (prompt,
completion and cached prompt tokens) in one ISO 4217 currency, each from an
effective date on. `PriceTable.cost_of` gives a request's cost at the price
in force when it finished, rounded up once to the micro-unit (10⁻⁶ of the
currency's unit); amounts are `int` everywhere (`Money` pairs one with its
currency) and never floats. Tables load from JSON or TOML price files
(`PriceTable.from_file`) and from parsed data (`PriceTable.from_mapping`).
A model without a price is refused with `UnpricedModelError` unless the
table has a default price. See ``docs/billing.md``.

**Modules.** `money` (`Money`, `parse_micros`, `format_micros`,
`format_cost`),
`currencies` (`CURRENCIES`), `model_price` (`ModelPrice`), `table`
(`PriceTable`), `price_file` (`read_price_file`), `stored`
(`StoredPrices`, the stored form of a table) and `changes`
(`check_change`: a new table keeps the past); every name is importable
from this package.
"""

from __future__ import annotations

from zerfoo_cloud.errors import UnpricedModelError
from zerfoo_cloud.pricing.changes import check_change
from zerfoo_cloud.pricing.currencies import CURRENCIES, check_currency
from zerfoo_cloud.pricing.model_price import (
    MAX_PRICE_MICROS,
    TOKENS_PER_PRICE,
    ModelPrice,
    parse_instant,
)
from zerfoo_cloud.pricing.money import (
    DECIMAL_PLACES,
    MICROS_PER_UNIT,
    UNPRICED,
    Money,
    format_cost,
    format_micros,
    parse_micros,
)
from zerfoo_cloud.pricing.price_file import (
    MAX_PRICE_FILE_BYTES,
    NumberText,
    read_price_file,
)
from zerfoo_cloud.pricing.stored import (
    NO_PRICES,
    StoredPrices,
    decode_table,
    encode_table,
)
from zerfoo_cloud.pricing.table import PriceTable

__all__ = [
    "CURRENCIES",
    "DECIMAL_PLACES",
    "MAX_PRICE_FILE_BYTES",
    "MAX_PRICE_MICROS",
    "MICROS_PER_UNIT",
    "NO_PRICES",
    "TOKENS_PER_PRICE",
    "UNPRICED",
    "ModelPrice",
    "Money",
    "NumberText",
    "PriceTable",
    "StoredPrices",
    "UnpricedModelError",
    "check_change",
    "check_currency",
    "decode_table",
    "encode_table",
    "format_cost",
    "format_micros",
    "parse_instant",
    "parse_micros",
    "read_price_file",
]
