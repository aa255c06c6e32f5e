"""
Exceptions raised by zerfoo-cloud.

Every exception the library raises on purpose derives from `CloudError`, so
one ``except CloudError`` catches them all. Where a builtin fits, a class
also derives from it, so code that knows nothing of zerfoo-cloud still
handles it sensibly::

    CloudError
    ├── InvalidConfigError (ValueError)      bad limits, empty id or key, bad option
    ├── TenantNotFoundError (LookupError)    no tenant with that id or key
    ├── TenantExistsError                    duplicate tenant id or API key
    ├── StoreError                           a store failed; the message says what to do
    │   ├── CorruptRecordError               a stored record cannot be decoded
    │   ├── SchemaMismatchError              the store was written by another schema version
    │   └── StoreFullError                   disk or map full; nothing was written
    ├── ModelTooLargeError                   a model exceeds the whole memory budget
    ├── ModelNotLoadedError (LookupError)    the model is not loaded
    ├── SAMLError                            a SAML document or assertion was rejected
    ├── UnauthorizedError                    HTTP 401: no API key, or an unknown one
    ├── ModelNotAllowedError (PermissionError)  HTTP 403: model not in the allow list
    ├── RequestTooLargeError                 HTTP 413: request body over the limit
    └── RateLimitedError                     HTTP 429: request, token or concurrency limit

Each exception builds its own message and keeps its data as attributes.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zerfoo_cloud.limits import Decision

__all__ = [
    "CloudError",
    "CorruptRecordError",
    "InvalidConfigError",
    "ModelNotAllowedError",
    "ModelNotLoadedError",
    "ModelTooLargeError",
    "RateLimitedError",
    "RequestTooLargeError",
    "SAMLError",
    "SchemaMismatchError",
    "StoreError",
    "StoreFullError",
    "TenantExistsError",
    "TenantNotFoundError",
    "UnauthorizedError",
]


class CloudError(Exception):
    """
    Base class of every error zerfoo-cloud raises on purpose.
    """


class InvalidConfigError(CloudError, ValueError):
    """
    A configuration value is out of range or missing.

    *field* names the offending setting when there is one.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class TenantNotFoundError(CloudError, LookupError):
    """
    No tenant has the given id (or API key).

    *tenant_id* is ``None`` when the lookup was by API key: the key itself is
    never kept on the exception, so it cannot end up in a log.
    """

    def __init__(self, tenant_id: str | None) -> None:
        self.tenant_id = tenant_id
        if tenant_id is None:
            msg = "no tenant has this API key"
        else:
            msg = f"tenant {tenant_id!r} not found"
        super().__init__(msg)


class TenantExistsError(CloudError):
    """
    A tenant with the same id, or the same API key, already exists.

    *field* is ``"id"`` or ``"api_key"``.
    """

    def __init__(self, tenant_id: str, *, field: str = "id") -> None:
        self.tenant_id = tenant_id
        self.field = field
        if field == "api_key":
            msg = f"another tenant already uses the API key given for {tenant_id!r}"
        else:
            msg = f"tenant {tenant_id!r} already exists"
        super().__init__(msg)


class StoreError(CloudError):
    """
    A store could not do what was asked.

    The message says what failed and what to do about it; the original
    backend exception is chained as ``__cause__``.
    """


class CorruptRecordError(StoreError):
    """
    A stored record cannot be decoded.

    *store* names the store (``"lmdb:tenants"``) and *key* the record, so an
    operator can find and repair or delete it. Corrupt records are never
    skipped silently.
    """

    def __init__(self, store: str, key: str, reason: str) -> None:
        self.store = store
        self.key = key
        self.reason = reason
        super().__init__(
            f"corrupt record {key!r} in {store}: {reason}; restore it from a "
            "backup or delete it with the zerfoo-cloud command"
        )


class SchemaMismatchError(StoreError):
    """
    The store was written by a schema version this library cannot read.
    """

    def __init__(self, path: str, found: int, expected: int) -> None:
        self.path = path
        self.found = found
        self.expected = expected
        super().__init__(
            f"store {path!r} has schema version {found}, this zerfoo-cloud "
            f"reads version {expected}; upgrade zerfoo-cloud or point it at "
            "another store"
        )


class StoreFullError(StoreError):
    """
    The disk or the store's size limit is full; the write did not happen.
    """


class ModelTooLargeError(CloudError):
    """
    A model needs more memory than the whole budget.
    """

    def __init__(self, model_id: str, vram_bytes: int, budget_bytes: int) -> None:
        self.model_id = model_id
        self.vram_bytes = vram_bytes
        self.budget_bytes = budget_bytes
        super().__init__(
            f"model {model_id!r} needs {vram_bytes} bytes, more than the whole "
            f"budget of {budget_bytes} bytes"
        )


class ModelNotLoadedError(CloudError, LookupError):
    """
    The model is not loaded.
    """

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        super().__init__(f"model {model_id!r} is not loaded")


class SAMLError(CloudError):
    """
    A SAML document was rejected. Subclasses in `zerfoo_cloud.sso` say why.
    """


class UnauthorizedError(CloudError):
    """
    The request carries no API key, or a key no tenant has (HTTP 401).

    *reason* is ``"missing"`` or ``"invalid"``. The key itself is never kept.

    .. versionadded:: 0.1.0
    """

    def __init__(self, reason: str = "invalid") -> None:
        self.reason = reason
        if reason == "missing":
            msg = (
                "You didn't provide an API key. Send it in the Authorization "
                "header as 'Bearer <key>', or in the x-api-key header."
            )
        else:
            msg = "Incorrect API key provided."
        super().__init__(msg)


class ModelNotAllowedError(CloudError, PermissionError):
    """
    The tenant may not use the requested model (HTTP 403).

    .. versionadded:: 0.1.0
    """

    def __init__(self, tenant_id: str, model: str) -> None:
        self.tenant_id = tenant_id
        self.model = model
        super().__init__(f"The model {model!r} is not allowed for this API key.")


class RequestTooLargeError(CloudError):
    """
    The request body exceeds the size limit (HTTP 413).

    *size* is the announced ``Content-Length``, or the bytes read when the
    limit was passed.

    .. versionadded:: 0.1.0
    """

    def __init__(self, limit: int, size: int) -> None:
        self.limit = limit
        self.size = size
        super().__init__(
            f"The request body is too large: at least {size} bytes, the limit "
            f"is {limit} bytes."
        )


class RateLimitedError(CloudError):
    """
    A request, token or concurrency limit refused the request (HTTP 429).

    Attributes:
        tenant_id: the tenant refused.
        limit: ``"requests"``, ``"tokens"`` or ``"concurrency"``.
        retry_after: seconds until the same request would pass.
        requests: the request-quota decision, when known.
        tokens: the token-budget decision, when known.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        tenant_id: str,
        limit: str,
        retry_after: float,
        *,
        requests: Decision | None = None,
        tokens: Decision | None = None,
        requested: int = 1,
        capacity: int = 0,
    ) -> None:
        self.tenant_id = tenant_id
        self.limit = limit
        self.retry_after = retry_after
        self.requests = requests
        self.tokens = tokens
        if limit == "concurrency":
            msg = (
                f"Too many requests in flight: the limit is {capacity} at once. "
                "Retry when one has finished."
            )
        else:
            unit = "requests" if limit == "requests" else "tokens"
            msg = (
                f"Rate limit reached for {unit} per minute: limit {capacity}, "
                f"requested {requested}. Please try again in {retry_after:.3g}s."
            )
        super().__init__(msg)
