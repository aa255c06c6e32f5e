"""
A price table: each model's prices over time, in one currency.

`PriceTable.price_at` answers which price was in force for a model at a
moment, and `PriceTable.cost_of` what a request cost then, in micro-units.
A price change is a new `ModelPrice` with a later ``effective_from``: the
earlier price stays in the table, so a request is always charged the price
of its own moment, and a cost computed once (when its billing record is
made) never changes.

A model with no price in force is refused (`zerfoo_cloud.errors.UnpricedModelError`)
unless the table has a *default* price list: a seller must never give
inference away because a model was left out of the table.
"""

from __future__ import annotations

import bisect
import itertools
import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

from zerfoo_cloud._field_limits import MAX_MODEL_LENGTH
from zerfoo_cloud.errors import InvalidConfigError, UnpricedModelError
from zerfoo_cloud.pricing._short import short
from zerfoo_cloud.pricing.currencies import check_currency
from zerfoo_cloud.pricing.model_price import ModelPrice
from zerfoo_cloud.pricing.price_file import read_price_file

__all__ = ["TABLE_KEYS", "PriceTable"]

#: The keys of a price table's mapping (and of a price file).
TABLE_KEYS = ("currency", "models", "default")


def _check_model(model: object) -> str:
    if (
        type(model) is not str
        or not 0 < len(model) <= MAX_MODEL_LENGTH
        or not _encodes(model)
    ):
        msg = (
            f"models: a model name is 1 to {MAX_MODEL_LENGTH} characters of "
            f"valid text, not {short(model)}"
        )
        raise InvalidConfigError(msg, field="models")
    return model


def _encodes(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def _timeline(prices: Iterable[object], field: str) -> tuple[ModelPrice, ...]:
    found: list[ModelPrice] = []
    for price in prices:
        if not isinstance(price, ModelPrice):
            msg = f"{field}: a price is a ModelPrice, not {short(price)}"
            raise InvalidConfigError(msg, field=field)
        found.append(price)
    if not found:
        msg = f"{field}: give at least one price"
        raise InvalidConfigError(msg, field=field)
    found.sort(key=lambda price: price.effective_from)
    for earlier, later in itertools.pairwise(found):
        if earlier.effective_from == later.effective_from:
            msg = (
                f"{field}: two prices take effect at {later.effective_from.isoformat()}"
            )
            raise InvalidConfigError(msg, field=field)
    return tuple(found)


def _price_list(data: object, field: str) -> list[ModelPrice]:
    if isinstance(data, (str, bytes, Mapping)) or not isinstance(data, Iterable):
        msg = f"{field}: a list of prices, not {short(data)}"
        raise InvalidConfigError(msg, field=field)
    return [
        ModelPrice.from_mapping(item, field=f"{field}[{index}]")
        for index, item in enumerate(data)
    ]


class PriceTable:
    """
    Prices per model over time, in one currency; immutable.

    *currency* is an ISO 4217 code (`zerfoo_cloud.pricing.CURRENCIES`).
    *models* maps each model name (as requests name it, 1 to
    `zerfoo_cloud.metering.MAX_MODEL_LENGTH` characters) to its prices, in
    any order; *default*, when given, prices every model without a price of
    its own in force. No two prices of one list may take effect at the same
    moment.

    Tables compare equal when their currency and prices are equal.

    Raises:
        InvalidConfigError: an unknown currency, a bad model name, an empty
            or duplicated list of prices (the message names the model).

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_currency", "_default", "_default_starts", "_models", "_starts")

    def __init__(
        self,
        currency: str,
        models: Mapping[str, Iterable[ModelPrice]] | None = None,
        default: Iterable[ModelPrice] | None = None,
    ) -> None:
        self._currency = check_currency(currency)
        timelines: dict[str, tuple[ModelPrice, ...]] = {}
        for model, prices in (models or {}).items():
            _check_model(model)
            timelines[model] = _timeline(prices, f"models[{short(model)}]")
        self._models = MappingProxyType(timelines)
        self._starts = {
            model: [price.effective_from for price in prices]
            for model, prices in timelines.items()
        }
        self._default = () if default is None else _timeline(default, "default")
        self._default_starts = [price.effective_from for price in self._default]

    @property
    def currency(self) -> str:
        """The ISO 4217 code of every amount of the table."""
        return self._currency

    @property
    def models(self) -> Mapping[str, tuple[ModelPrice, ...]]:
        """Each priced model's prices, oldest first (read-only)."""
        return self._models

    @property
    def default(self) -> tuple[ModelPrice, ...]:
        """The prices of models without their own, oldest first; ``()`` if none."""
        return self._default

    def price_at(self, model: str, when: datetime) -> ModelPrice:
        """
        Return the price of *model* in force at *when* (an aware datetime):
        the model's price with the latest ``effective_from`` at or before
        *when*, else the default's, else none.

        Raises:
            UnpricedModelError: neither the model nor the default has a price
                in force at *when*.
            InvalidConfigError: *when* is not an aware datetime.
        """
        if not isinstance(when, datetime) or (
            when.tzinfo is not timezone.utc and when.utcoffset() is None
        ):
            msg = f"when: an aware datetime, not {short(when)}"
            raise InvalidConfigError(msg, field="when")
        starts = self._starts.get(model)
        if starts is not None:
            index = bisect.bisect_right(starts, when) - 1
            if index >= 0:
                return self._models[model][index]
        index = bisect.bisect_right(self._default_starts, when) - 1
        if index >= 0:
            return self._default[index]
        raise UnpricedModelError(model)

    def cost_of(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        *,
        when: datetime,
    ) -> int:
        """
        Return what a request to *model* that finished at *when* costs, in
        micro-units: `ModelPrice.cost` of the price in force then
        (`price_at`). *cached_input_tokens* are part of *input_tokens*.

        Call it once, when the request's billing record is made, and store
        the result: a total is then the sum of stored costs, and a later
        price change does not touch it.

        Raises:
            UnpricedModelError: no price is in force for *model* at *when*.
            InvalidConfigError: a bad token count or *when*.
        """
        return self.price_at(model, when).cost(
            input_tokens, output_tokens, cached_input_tokens
        )

    def with_price(self, model: str, price: ModelPrice) -> PriceTable:
        """
        Return a copy of the table with *price* added to *model*'s prices
        (a price change, from ``price.effective_from`` on); this table is
        unchanged.

        Raises:
            InvalidConfigError: *model* already has a price taking effect at
                the same moment.
        """
        models = {name: list(prices) for name, prices in self._models.items()}
        models.setdefault(_check_model(model), []).append(price)
        return PriceTable(self._currency, models, self._default or None)

    @classmethod
    def from_mapping(cls, data: object) -> PriceTable:
        """
        Return the table a price file holds, given as parsed data: a mapping
        of ``currency``, ``models`` (model name to a list of prices, each as
        `ModelPrice.from_mapping` reads it) and optionally ``default`` (a
        list of prices). See ``docs/billing.md`` for the format.

        Nothing is built unless all of it is valid.

        Raises:
            InvalidConfigError: the first problem found; its one-line message
                and ``field`` name the place (``models['m'][0].input``).
        """
        if not isinstance(data, Mapping):
            msg = f"a price table is a mapping of {', '.join(TABLE_KEYS)}"
            raise InvalidConfigError(msg, field="price_table")
        for key in data:
            if key not in TABLE_KEYS:
                msg = f"{short(key)}: unknown key (known: {', '.join(TABLE_KEYS)})"
                raise InvalidConfigError(msg, field=str(key)[:64])
        if "currency" not in data:
            msg = "currency: missing"
            raise InvalidConfigError(msg, field="currency")
        models = data.get("models", {})
        if not isinstance(models, Mapping):
            msg = f"models: a table of model names to price lists, not {short(models)}"
            raise InvalidConfigError(msg, field="models")
        timelines = {
            _check_model(model): _price_list(prices, f"models[{short(model)}]")
            for model, prices in models.items()
        }
        default = data.get("default")
        return cls(
            data["currency"],
            timelines,
            None if default is None else _price_list(default, "default"),
        )

    def to_mapping(self) -> dict[str, Any]:
        """
        Return the table as `from_mapping` reads it (and as a JSON price file
        holds it): amounts as decimal text, dates in UTC. ``default`` is left
        out when the table has none.
        """
        data: dict[str, Any] = {
            "currency": self._currency,
            "models": {
                model: [price.to_mapping() for price in prices]
                for model, prices in self._models.items()
            },
        }
        if self._default:
            data["default"] = [price.to_mapping() for price in self._default]
        return data

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> PriceTable:
        """
        Return the table of the price file at *path*: JSON (``.json``) or
        TOML (``.toml``), read within the limits of
        `zerfoo_cloud.pricing.price_file.read_price_file`.

        Raises:
            InvalidConfigError: the file cannot be read or holds no valid
                table; one line, starting with the path.
        """
        data = read_price_file(path)
        try:
            return cls.from_mapping(data)
        except InvalidConfigError as exc:
            msg = f"{os.fspath(path)}: {exc}"
            raise InvalidConfigError(msg, field=exc.field) from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PriceTable):
            return NotImplemented
        return (self._currency, dict(self._models), self._default) == (
            other._currency,
            dict(other._models),
            other._default,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"PriceTable(currency={self._currency!r}, models={len(self._models)}, "
            f"default={'yes' if self._default else 'no'})"
        )
