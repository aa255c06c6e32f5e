"""
The model routes seen through a tenant's allow list.

``GET …/models`` lists the models the app or upstream serves; a tenant with
a model allow list sees only the allowed ones, and ``GET …/models/{id}`` of
a model it may not use is a 404, as for a model that does not exist. The
list is small JSON: the adapters keep at most `MAX_MODEL_LIST_BYTES` of it,
filter it with `filter_model_list`, and send the result whole.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from zerfoo_cloud.errors import CloudError, ModelNotFoundError
from zerfoo_cloud.http._json import parse_json

if TYPE_CHECKING:
    from collections.abc import Callable

    from zerfoo_cloud.tenants import Tenant

__all__ = [
    "MAX_MODEL_LIST_BYTES",
    "ModelListError",
    "check_model_route",
    "filter_model_list",
    "model_route",
    "read_model_list",
]

#: A model list larger than this is not passed to a tenant with an allow list
#: (it gets a 502 instead: the list could not be filtered).
MAX_MODEL_LIST_BYTES = 1 << 20
_SEGMENT = "/models"
_PREFIX = "/v1"
_READ_METHODS = frozenset({"GET", "HEAD"})


class ModelListError(CloudError):
    """
    The app's model list could not be read (not JSON, or over
    `MAX_MODEL_LIST_BYTES`), so it cannot be filtered for the tenant
    (HTTP 502; the list is not passed on).
    """

    http_status = 502

    def __init__(self) -> None:
        super().__init__("The model list could not be read.")


def model_route(method: str, path: str) -> tuple[bool, str] | None:
    """
    Which model route *path* is: ``(True, "")`` for the list
    (``/models``, ``/v1/models``, ``/prefix/v1/models``), ``(False, id)``
    for one model (``…/models/{id}``, the id may hold ``/``), ``None`` for
    any other path or a method other than ``GET`` and ``HEAD``.

    .. versionadded:: 0.1.0
    """
    if method not in _READ_METHODS:
        return None
    at = path.find(_SEGMENT)
    if at < 0 or (at and not path[:at].endswith(_PREFIX)):
        return None
    rest = path[at + len(_SEGMENT) :]
    if rest in {"", "/"}:
        return True, ""
    if rest.startswith("/"):
        return False, rest[1:]
    return None


def check_model_route(route: tuple[bool, str] | None, tenant: Tenant) -> None:
    """
    Refuse ``GET …/models/{id}`` (*route* from `model_route`) of a model
    *tenant* may not use.

    Raises:
        ModelNotFoundError: the model is not in the tenant's allow list.

    .. versionadded:: 0.1.0
    """
    if route is not None and not route[0] and not tenant.model_allowed(route[1]):
        raise ModelNotFoundError(route[1])


def read_model_list(body: bytes) -> dict[str, Any]:
    """
    The OpenAI model list *body*, read: an object whose ``data`` is a list.

    Raises:
        ValueError: *body* is over `MAX_MODEL_LIST_BYTES`, not JSON within
            `zerfoo_cloud.http._json.parse_json`'s limits, or not an object
            with a ``data`` array.

    .. versionadded:: 0.1.0
    """
    if len(body) > MAX_MODEL_LIST_BYTES:
        msg = f"the model list is over {MAX_MODEL_LIST_BYTES} bytes"
        raise ValueError(msg)
    doc: Any = parse_json(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        msg = "the model list is not an object with a data array"
        raise ValueError(msg)  # noqa: TRY004 - the callers handle one error class
    return doc


def filter_model_list(body: bytes, allowed: Callable[[str], bool]) -> bytes | None:
    """
    Return the OpenAI model list *body* with only the models *allowed*
    accepts, or ``None`` when *body* is not such a list (see
    `read_model_list`).

    .. versionadded:: 0.1.0
    """
    try:
        doc = read_model_list(body)
    except ValueError:
        return None
    doc["data"] = [
        item
        for item in doc["data"]
        if isinstance(item, dict)
        and isinstance(item.get("id"), str)
        and allowed(item["id"])
    ]
    return json.dumps(doc).encode()
