"""
A price table as a store keeps it: its stored form and its version.

Every store of prices (`zerfoo_cloud.stores.protocols.PriceStore`) keeps
one table and a version number that grows by one with each change, so a
change can be made only against the version it was based on
(compare-and-set). The table is kept as the JSON of
`PriceTable.to_mapping`, keys sorted: the same table is always the same
bytes.
"""

from __future__ import annotations

import json

import attrs

from zerfoo_cloud.errors import CorruptRecordError, InvalidConfigError
from zerfoo_cloud.pricing.table import PriceTable

__all__ = ["NO_PRICES", "StoredPrices", "decode_table", "encode_table"]


def encode_table(table: PriceTable) -> bytes:
    """
    Return *table*'s stored form: the compact JSON of
    `PriceTable.to_mapping`, keys sorted, UTF-8. `decode_table` reads it
    back to an equal table.

    .. versionadded:: 0.1.0
    """
    return json.dumps(
        table.to_mapping(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def decode_table(raw: bytes, store: str) -> PriceTable:
    """
    Return the table whose stored form is *raw*.

    Raises:
        CorruptRecordError: *raw* is not a valid stored table; *store*
            names the store in the message.

    .. versionadded:: 0.1.0
    """
    try:
        return PriceTable.from_mapping(json.loads(bytes(raw)))
    except (ValueError, InvalidConfigError) as exc:
        raise CorruptRecordError(store, "prices", str(exc)[:200]) from None


@attrs.frozen
class StoredPrices:
    """
    The price table a store holds, and its version.

    Attributes:
        table: the table, or ``None`` while none was ever stored.
        version: 0 while no table was ever stored; each change adds 1.

    .. versionadded:: 0.1.0
    """

    table: PriceTable | None
    version: int


#: What a store holds before its first table.
NO_PRICES = StoredPrices(None, 0)
