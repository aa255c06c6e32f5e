"""
Which replica serves which model: the ``--upstream`` specs and the model
lists the replicas publish.

``--upstream URL`` names a replica whose models are read from its
``/v1/models`` (and read again every discovery interval); ``--upstream
MODEL=URL`` names a replica that serves *MODEL*, without asking it. The same
URL named several times is one replica. `parse_upstreams` turns the specs
into `UpstreamSpec` values; `parse_model_list` reads one replica's model
list with the bounded JSON parser, keeping only well-formed entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

import attrs

from zerfoo_cloud._field_limits import MAX_MODEL_LENGTH
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.http._models import read_model_list
from zerfoo_cloud.http._proxy_rules import parse_base_url

__all__ = [
    "MAX_MODELS_PER_REPLICA",
    "ModelEntry",
    "UpstreamSpec",
    "model_list_body",
    "parse_model_list",
    "parse_upstreams",
    "valid_model_id",
]

#: Models kept from one replica's list; the rest are ignored (and logged).
MAX_MODELS_PER_REPLICA: Final = 1000

_SCHEMES: Final = ("http://", "https://")
#: The fields of a model list entry passed on to clients (the rest of what
#: a replica says about a model stays with it).
_ENTRY_FIELDS: Final = ("created", "owned_by")

#: One entry of a model list: the fields passed on, by name.
ModelEntry = Mapping[str, object]


def valid_model_id(model: object) -> bool:
    """
    Whether *model* can be routed to: a non-empty string of printable ASCII
    without spaces, at most `MAX_MODEL_LENGTH` characters (the model a
    request names is compared as the policy read it).

    .. versionadded:: 0.1.0
    """
    return (
        isinstance(model, str)
        and 0 < len(model) <= MAX_MODEL_LENGTH
        and model.isascii()
        and model.isprintable()
        and " " not in model
    )


@attrs.frozen
class UpstreamSpec:
    """
    One replica named by ``--upstream``: its base URL, the models named for
    it, and whether its own model list is read.

    .. versionadded:: 0.1.0
    """

    url: str
    models: frozenset[str]
    discover: bool


def _split(spec: str) -> tuple[str | None, str]:
    """``(model, url)`` of ``MODEL=URL``, ``(None, url)`` of a bare URL."""
    if spec.startswith(_SCHEMES):
        return None, spec
    cuts = [at for at in (spec.find("=" + s) for s in _SCHEMES) if at >= 0]
    if not cuts:
        msg = f"--upstream takes URL or MODEL=URL with an http(s) URL, not {spec!r}"
        raise InvalidConfigError(msg, field="upstream")
    at = min(cuts)
    model = spec[:at]
    if not valid_model_id(model):
        msg = (
            f"--upstream {spec!r}: the model must be printable ASCII without "
            f"spaces, 1 to {MAX_MODEL_LENGTH} characters"
        )
        raise InvalidConfigError(msg, field="upstream")
    return model, spec[at + 1 :]


def parse_upstreams(specs: Iterable[str]) -> list[UpstreamSpec]:
    """
    The replicas named by *specs* (``URL`` or ``MODEL=URL`` each), in the
    order first named; one per base URL (a URL named bare and with models
    is read for its models and serves the named ones too).

    Raises:
        InvalidConfigError: No spec, a spec that is neither form, a model
            that is not `valid_model_id`, or a URL `parse_base_url` refuses.

    .. versionadded:: 0.1.0
    """
    found: dict[str, tuple[set[str], bool]] = {}
    for spec in specs:
        model, url = _split(spec)
        origin, prefix = parse_base_url(url)
        models, _ = found.setdefault(origin + prefix, (set(), False))
        if model is None:
            found[origin + prefix] = (models, True)
        else:
            models.add(model)
    if not found:
        msg = "name at least one upstream"
        raise InvalidConfigError(msg, field="upstream")
    return [
        UpstreamSpec(url, frozenset(models), discover)
        for url, (models, discover) in found.items()
    ]


def parse_model_list(body: bytes) -> dict[str, ModelEntry]:
    """
    The models of an OpenAI model list *body*, by id, each with its
    ``created`` and ``owned_by`` when they are plain values.

    Entries that are not objects or whose ``id`` is not `valid_model_id`
    are skipped; a repeated id keeps its first entry; past
    `MAX_MODELS_PER_REPLICA` models the rest are skipped.

    Raises:
        ValueError: *body* is not a model list (`read_model_list`).

    .. versionadded:: 0.1.0
    """
    doc = read_model_list(body)
    models: dict[str, ModelEntry] = {}
    for item in doc["data"]:
        if len(models) >= MAX_MODELS_PER_REPLICA:
            break
        if not isinstance(item, dict) or not valid_model_id(item.get("id")):
            continue
        models.setdefault(
            item["id"],
            {
                name: item[name]
                for name in _ENTRY_FIELDS
                if isinstance(item.get(name), (str, int))
                and not isinstance(item.get(name), bool)
            },
        )
    return models


def model_list_body(models: Mapping[str, ModelEntry]) -> dict[str, object]:
    """
    The OpenAI model list document of *models* (id to entry), sorted by id.

    .. versionadded:: 0.1.0
    """
    return {
        "object": "list",
        "data": [
            {
                "id": model,
                "object": "model",
                "created": 0,
                "owned_by": "upstream",
                **entry,
            }
            for model, entry in sorted(models.items())
        ],
    }
