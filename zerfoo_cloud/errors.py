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
    ├── KeyNotFoundError (LookupError)       no API key with that id for the tenant
    ├── PriceTableChangedError               the stored price table is not at the version read
    ├── PricesReadOnlyError                  prices come from a price file, not the store
    ├── StoreError                           a store failed; the message says what to do
    │   ├── CorruptRecordError               a stored record cannot be decoded
    │   ├── SchemaMismatchError              the store was written by another schema version
    │   ├── StoreFullError                   disk or map full; nothing was written
    │   └── StoreUnavailableError            Redis or PostgreSQL unreachable; 503 + Retry-After
    ├── AuditChainError                      the audit log's hash chain is broken
    ├── ResourceError                        GPU memory or a model file said no
    │   ├── ModelTooLargeError               a model exceeds the whole memory budget
    │   ├── ModelNotLoadedError (LookupError)  the model is not loaded
    │   ├── ModelFormatError (InvalidConfigError)  a model file's header is unreadable or hostile
    │   ├── ResourceBusyError                the memory needed is held by models in use
    │   └── GPUUnavailableError              no NVIDIA driver, library or device to read
    ├── RequestRejectedError                 a client's request was refused (HTTP 4xx)
    │   ├── InvalidRequestError (ValueError)  400: a body the policy cannot fully read
    │   ├── DuplicateHeaderError             400: a credential header sent twice
    │   ├── UnauthorizedError                401: no API key, or an unknown one
    │   ├── ModelNotAllowedError (PermissionError)  403: model not in the allow list
    │   ├── ModelNotFoundError (LookupError)  404: no such model for this key
    │   ├── RequestTooLargeError             413: request body over the limit
    │   ├── RateLimitedError                 429: request, token or concurrency limit
    │   ├── RequestOverBudgetError           429: reservation above the whole token budget
    │   ├── BudgetExceededError              429: a spend budget cannot hold the request
    │   ├── BudgetUnenforceableError         403: a spend budget the server cannot price
    │   └── UnpricedModelError (PermissionError)  403: no price in force for the model
    ├── MissingExtraError (ImportError)      a feature's optional extra is not installed
    ├── SessionError                         a session token is malformed, forged or expired
    ├── UpstreamError                        a proxied upstream failed mid-response
    ├── WebhookVerificationError (ValueError)  a webhook's signature or time was refused
    ├── OIDCError                            an OpenID Connect login failed
    │   (*code* says which check or call, e.g. ``oidc_issuer``)
    └── SAMLError                            a SAML document or assertion was rejected
        │   (defined in `zerfoo_cloud.sso.errors`, one per check)
        ├── SAMLParseError                   not XML or base64, too large or deep
        │   └── SAMLUnsafeXMLError           a DOCTYPE or entity (XXE, billion laughs)
        ├── SAMLMetadataError                unusable IdP metadata
        ├── SAMLStructureError               duplicate IDs, several assertions, ...
        ├── SAMLSignatureError               no trusted signature covers the assertion
        │   └── SAMLAlgorithmError           SHA-1 while off, HMAC, other transforms
        ├── SAMLDecryptionError              an EncryptedAssertion cannot be decrypted
        ├── SAMLStatusError                  the IdP's status is not Success
        ├── SAMLIssuerError                  the Issuer is not the IdP
        ├── SAMLDestinationError             the Destination is not the ACS URL
        ├── SAMLSubjectConfirmationError     no usable bearer confirmation
        │   └── SAMLRecipientError           its Recipient is not the ACS URL
        ├── SAMLInResponseToError            not the answer to the SP's request
        ├── SAMLAudienceError                the SP is not an Audience
        ├── SAMLTimeError                    outside the validity window
        │   ├── SAMLExpiredError
        │   └── SAMLNotYetValidError
        └── SAMLReplayError                  the assertion was already used

**HTTP.** Each class says how the HTTP layer answers a request it stops:
`CloudError.http_status`, `CloudError.error_type` and
`CloudError.error_code` (OpenAI's error ``type`` and ``code``), and
`CloudError.error_param`. Every `RequestRejectedError` is a 4xx; a
`StoreError` is a 503; any other error is a 500 whose message is not shown
to the client. `zerfoo_cloud.http.status_for` reads these attributes and
nothing else.

Each exception builds its own message and keeps its data as attributes.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zerfoo_cloud.buckets import Decision

__all__ = [
    "AuditChainError",
    "BudgetExceededError",
    "BudgetUnenforceableError",
    "CloudError",
    "CorruptRecordError",
    "DuplicateHeaderError",
    "GPUUnavailableError",
    "InvalidConfigError",
    "InvalidRequestError",
    "KeyNotFoundError",
    "MissingExtraError",
    "ModelFormatError",
    "ModelNotAllowedError",
    "ModelNotFoundError",
    "ModelNotLoadedError",
    "ModelTooLargeError",
    "OIDCError",
    "PriceTableChangedError",
    "PricesReadOnlyError",
    "RateLimitedError",
    "RequestOverBudgetError",
    "RequestRejectedError",
    "RequestTooLargeError",
    "ResourceBusyError",
    "ResourceError",
    "SAMLError",
    "SchemaMismatchError",
    "SessionError",
    "StoreError",
    "StoreFullError",
    "StoreUnavailableError",
    "TenantExistsError",
    "TenantNotFoundError",
    "UnauthorizedError",
    "UnpricedModelError",
    "UpstreamError",
    "WebhookVerificationError",
]


class CloudError(Exception):
    """
    Base class of every error zerfoo-cloud raises on purpose.

    The four attributes below say how the HTTP layer answers a request this
    error stops; it reads them and nothing else (`zerfoo_cloud.http.status_for`).
    Here they are those of a server failure: HTTP 500, type
    ``server_error``, code ``internal_error``, no param. A subclass the
    client may see sets its own; an instance sets its own where they depend
    on its data (`InvalidRequestError.code`, `RateLimitedError.limit`).
    """

    #: The HTTP status of the response to a request this error stops.
    http_status: int = 500
    #: The OpenAI error ``type`` of that response.
    error_type: str = "server_error"
    #: The OpenAI error ``code`` of that response.
    error_code: str | None = "internal_error"
    #: The OpenAI error ``param`` (the body member at fault), or ``None``.
    error_param: str | None = None


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
    never kept on the exception, so it cannot end up in a log. A request
    whose tenant is gone is answered as one with an unknown key (HTTP 401,
    code ``invalid_api_key``).
    """

    http_status = 401
    error_type = "invalid_request_error"
    error_code = "invalid_api_key"

    def __init__(self, tenant_id: str | None) -> None:
        self.tenant_id = tenant_id
        if tenant_id is None:
            msg = "no tenant has this API key"
        else:
            msg = f"tenant {tenant_id!r} not found"
        super().__init__(msg)


class KeyNotFoundError(CloudError, LookupError):
    """
    The tenant has no API key with the given id. The admin API answers it
    with 404, code ``key_not_found``; no inference request raises it.

    .. versionadded:: 0.1.0
    """

    def __init__(self, tenant_id: str, key_id: str) -> None:
        self.tenant_id = tenant_id
        self.key_id = key_id
        super().__init__(f"tenant {tenant_id!r} has no key {key_id[:40]!r}")


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


class PriceTableChangedError(CloudError):
    """
    The stored price table is no longer at the version the change was based
    on: someone else changed it since it was read. Nothing was written; read
    it again and redo the change.

    *expected* is the version the change was based on, *found* the one
    stored.
    """

    def __init__(self, expected: int, found: int) -> None:
        self.expected = expected
        self.found = found
        super().__init__(
            f"the price table changed since it was read (version {expected}, now "
            f"{found}): read it again and redo the change"
        )


class PricesReadOnlyError(CloudError):
    """
    The service prices with a price file (``serve --prices FILE``): the
    table cannot be changed through the store while the file rules.
    """


class StoreError(CloudError):
    """
    A store could not do what was asked.

    The message says what failed and what to do about it; the original
    backend exception is chained as ``__cause__``. A request it stops is
    answered HTTP 503, code ``service_unavailable``.
    """

    http_status = 503
    error_code = "service_unavailable"


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


class StoreUnavailableError(StoreError):
    """
    A store on the network (Redis, PostgreSQL) cannot be reached now.

    Nothing was done. A request it stops is answered HTTP 503, code
    ``service_unavailable``, with ``Retry-After`` from *retry_after*
    (seconds, at least 1), so clients back off instead of failing over.
    *store* names the backend (``"redis"``, ``"postgresql"``) without any
    address or password.
    """

    def __init__(self, store: str, message: str, retry_after: float = 1.0) -> None:
        self.store = store
        self.retry_after = retry_after
        super().__init__(message)


class AuditChainError(CloudError):
    """
    The audit log's hash chain is broken: an entry was altered, removed,
    inserted or moved.

    *seq* is the position (sequence number) where the log first stops being a
    valid chain and *problem* the kind of break (an
    `zerfoo_cloud.audit.AuditProblem` value); the message says what was found.
    Raised by `zerfoo_cloud.audit.AuditVerification.check`.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, seq: int, problem: str) -> None:
        super().__init__(message)
        self.seq = seq
        self.problem = problem


class ResourceError(CloudError):
    """
    Base class of the errors of GPU memory and model files: a model that does
    not fit or is not loaded, memory held by models in use, a model file that
    cannot be read, or GPU memory that cannot be read at all.

    Raised by `zerfoo_cloud.ResourceManager` and `zerfoo_cloud.resources`;
    one ``except ResourceError`` catches them all.

    .. versionadded:: 0.1.0
    """


class ModelTooLargeError(ResourceError):
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


class ModelNotLoadedError(ResourceError, LookupError):
    """
    The model is not loaded.
    """

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        super().__init__(f"model {model_id!r} is not loaded")


class ModelFormatError(ResourceError, InvalidConfigError):
    """
    A model file cannot be read as what it claims to be.

    Raised by `zerfoo_cloud.resources.estimate_vram_bytes` for a missing
    path, a folder without weights, or a safetensors header that is
    truncated, too large, not JSON, or describes tensors outside the file.
    *path* is the offending file and *reason* says what is wrong with it.

    .. versionadded:: 0.1.0
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}", field="path")


class ResourceBusyError(ResourceError):
    """
    The memory a request needs is held by models that may not be evicted now.

    Models in use (pinned by `zerfoo_cloud.ResourceManager.use`), models
    being loaded, and models whose eviction is still being carried out are
    never taken away, so a load that only fits by evicting them fails with
    this error (or waits for them, when given a timeout), and so does an
    explicit eviction of a model in use. Nothing was changed.

    *model_id* is the model asked for, *vram_bytes* what it needs (0 for an
    eviction), *busy_bytes* the bytes held by models that could not be
    evicted, and *budget_bytes* the whole budget.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        model_id: str,
        message: str,
        *,
        vram_bytes: int = 0,
        busy_bytes: int = 0,
        budget_bytes: int = 0,
    ) -> None:
        self.model_id = model_id
        self.vram_bytes = vram_bytes
        self.busy_bytes = busy_bytes
        self.budget_bytes = budget_bytes
        super().__init__(message)


class GPUUnavailableError(ResourceError):
    """
    GPU memory could not be read: no nvidia-ml-py, no NVIDIA driver, or no
    such device.

    The message says which, and the NVML error is chained as ``__cause__``.

    .. versionadded:: 0.1.0
    """


class SessionError(CloudError):
    """
    A session token was refused: malformed, signed with another key, or expired.

    *reason* is ``"malformed"``, ``"signature"`` or ``"expired"``. The token
    itself is never kept on the exception, so it cannot end up in a log.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class UpstreamError(CloudError):
    """
    The upstream server behind `zerfoo_cloud.http.proxy.UpstreamProxy` failed
    after the response to the client had started, so the response was cut
    short.

    *code* is the failure (``"upstream_unavailable"``, ``"upstream_timeout"``
    or ``"upstream_invalid_response"``) and *bytes_sent* how many body bytes
    had reached the client. The proxy raises it so the server closes the
    connection and the client sees a truncated response, not a complete one;
    a middleware around the proxy sees it too and can account for what was
    sent. The transport error is chained as ``__cause__``.

    .. versionadded:: 0.1.0
    """

    def __init__(self, code: str, bytes_sent: int) -> None:
        self.code = code
        self.bytes_sent = bytes_sent
        super().__init__(
            f"the upstream server failed ({code}) after {bytes_sent} bytes of "
            "the response were sent; the response was cut short"
        )


class WebhookVerificationError(CloudError, ValueError):
    """
    A signed webhook was refused by `zerfoo_cloud.alerts.verify`.

    *reason* is ``"headers"`` (a header is missing or malformed),
    ``"timestamp"`` (outside the tolerance) or ``"signature"`` (no
    signature matches any secret). Neither the secret nor the body is kept
    on the exception.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class OIDCError(CloudError):
    """
    An OpenID Connect login failed: the provider could not be reached or
    answered badly, or its ID token failed a check.

    *code* names what failed (``oidc_discovery``, ``oidc_network``,
    ``oidc_timeout``, ``oidc_too_large``, ``oidc_token_endpoint``,
    ``oidc_signature``, ``oidc_algorithm``, ``oidc_unknown_key``,
    ``oidc_issuer``, ``oidc_audience``, ``oidc_expired``,
    ``oidc_not_yet_valid``, ``oidc_nonce``, ``oidc_at_hash``,
    ``oidc_claims``, ``oidc_provider_error``). The message never holds a
    token, a code or a secret.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class SAMLError(CloudError):
    """
    A SAML document was rejected. Subclasses in `zerfoo_cloud.sso` say why.
    """


class RequestRejectedError(CloudError):
    """
    Base class of every error that refuses a client's request (an HTTP 4xx).

    The policy raises one before the app runs, so the app never sees the
    request and the client gets an OpenAI-shaped error. Each subclass sets
    the response's `http_status` (always 4xx), `error_type` and
    `error_code`; the message is the client's to read. One
    ``except RequestRejectedError`` catches every refusal, and
    `zerfoo_cloud.http.status_for` reads the attributes, so a new refusal
    needs no table in the HTTP layer.

    .. versionadded:: 0.1.0
    """

    http_status = 400
    error_type = "invalid_request_error"
    error_code = "invalid_request"
    #: Seconds until the same request would pass, sent as ``Retry-After``
    #: (whole seconds, at least 1); ``None`` when waiting would not help.
    retry_after: float | None = None


class DuplicateHeaderError(RequestRejectedError):
    """
    The request carries a header that must appear once several times
    (HTTP 400): two ``Authorization`` or two ``x-api-key`` headers (or, from
    a WSGI server, which joins repeated headers with commas, one holding a
    comma). Which one counts would be a guess, so neither does.

    .. versionadded:: 0.1.0
    """

    error_code = "duplicate_header"

    def __init__(self, header: str) -> None:
        self.header = header
        super().__init__(f"The {header} header may be sent only once.")


class UnauthorizedError(RequestRejectedError):
    """
    The request carries no API key, or a key no tenant has (HTTP 401).

    *reason* is ``"missing"`` or ``"invalid"``. The key itself is never kept.

    .. versionadded:: 0.1.0
    """

    http_status = 401
    error_code = "invalid_api_key"

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


class ModelNotAllowedError(RequestRejectedError, PermissionError):
    """
    The tenant may not use the requested model (HTTP 403).

    .. versionadded:: 0.1.0
    """

    http_status = 403
    error_code = "model_not_allowed"

    def __init__(self, tenant_id: str, model: str) -> None:
        self.tenant_id = tenant_id
        self.model = model
        super().__init__(f"The model {model!r} is not allowed for this API key.")


class InvalidRequestError(RequestRejectedError, ValueError):
    """
    The policy could not fully read the request, so it never reaches the app
    (HTTP 400, type ``invalid_request_error``).

    Attributes:
        code: the OpenAI error ``code``: ``invalid_json``, ``invalid_body``,
            ``missing_model``, ``invalid_model``, ``invalid_type``,
            ``integer_below_min_value`` or ``integer_above_max_value``.
        param: the body member at fault (``"model"``, ``"max_tokens"``), or
            ``None`` for the body as a whole.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, code: str, param: str | None = None) -> None:
        self.code = self.error_code = code
        self.param = self.error_param = param
        super().__init__(message)


def _owner(key_id: str | None) -> str:
    # Whose limit refused, as a 429 message says it.
    return "the tenant's limit" if key_id is None else f"the limit of API key {key_id}"


class RequestOverBudgetError(RequestRejectedError):
    """
    The request's token reservation exceeds the tenant's whole per-minute
    token budget, so no wait would let it pass (HTTP 429, type ``tokens``,
    code ``rate_limit_exceeded``, no ``Retry-After``), as OpenAI answers it.

    .. versionadded:: 0.1.0
    """

    http_status = 429
    error_type = "tokens"
    error_code = "rate_limit_exceeded"

    def __init__(
        self,
        tenant_id: str,
        model: str,
        limit: int,
        requested: int,
        *,
        key_id: str | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.model = model
        self.limit = limit
        self.requested = requested
        self.key_id = key_id
        target = f"{model} " if model else ""
        super().__init__(
            f"Request too large for {target}on tokens per min ({_owner(key_id)}): "
            f"Limit {limit}, Requested {requested}. The input or output tokens "
            "must be reduced in order to run successfully."
        )


class ModelNotFoundError(RequestRejectedError, LookupError):
    """
    ``GET …/models/{id}`` of a model the tenant may not use (HTTP 404), as
    OpenAI answers for a model that does not exist: the allow list is not
    revealed.

    .. versionadded:: 0.1.0
    """

    http_status = 404
    error_code = "model_not_found"

    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(
            f"The model {model!r} does not exist or you do not have access to it."
        )


class RequestTooLargeError(RequestRejectedError):
    """
    The request body exceeds the size limit (HTTP 413).

    *size* is the announced ``Content-Length``, or the bytes read when the
    limit was passed.

    .. versionadded:: 0.1.0
    """

    http_status = 413
    error_code = "request_too_large"

    def __init__(self, limit: int, size: int) -> None:
        self.limit = limit
        self.size = size
        super().__init__(
            f"The request body is too large: at least {size} bytes, the limit "
            f"is {limit} bytes."
        )


class RateLimitedError(RequestRejectedError):
    """
    A request, token or concurrency limit refused the request (HTTP 429).

    Attributes:
        tenant_id: the tenant refused.
        limit: ``"requests"``, ``"tokens"`` or ``"concurrency"``.
        retry_after: seconds until the same request would pass.
        requests: the request-quota decision, when known.
        tokens: the token-budget decision, when known.
        key_id: the API key whose own limit refused (`KeyRecord`), or
            ``None`` when the tenant's refused; the message says which.

    .. versionadded:: 0.1.0
    """

    http_status = 429
    error_type = "requests"
    error_code = "rate_limit_exceeded"
    retry_after: float

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
        key_id: str | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.limit = self.error_type = limit
        self.retry_after = retry_after
        self.requests = requests
        self.tokens = tokens
        self.key_id = key_id
        owner = _owner(key_id)
        if limit == "concurrency":
            msg = (
                f"Too many requests in flight ({owner}): the limit is {capacity} "
                "at once. Retry when one has finished."
            )
        else:
            unit = "requests" if limit == "requests" else "tokens"
            msg = (
                f"Rate limit reached for {unit} per minute ({owner}): limit "
                f"{capacity}, requested {requested}. Please try again in "
                f"{retry_after:.3g}s."
            )
        super().__init__(msg)


class BudgetExceededError(RequestRejectedError):
    """
    A spend budget of the tenant, or of the key, cannot hold the request's
    worst-case cost (HTTP 429, type and code ``insufficient_quota``, as
    OpenAI answers an account out of credit). The app never sees the
    request.

    Attributes:
        tenant_id: the tenant refused.
        key_id: the key whose budget refused, ``None`` for the tenant's.
        period: the budget's period (``"day"``, ``"week"``, ``"month"``,
            ``"lifetime"``).
        resets_at: when the period ends (ISO 8601 text), ``None`` for a
            lifetime budget.
        too_large: the request's worst case exceeds the whole amount, so
            it is refused in every period.
        retry_after: seconds until the period ends (``Retry-After``), or
            ``None`` when waiting would not help.

    .. versionadded:: 0.1.0
    """

    http_status = 429
    error_type = "insufficient_quota"
    error_code = "insufficient_quota"

    def __init__(
        self,
        tenant_id: str,
        key_id: str | None,
        period: str,
        resets_at: str | None,
        retry_after: float | None,
        *,
        too_large: bool = False,
    ) -> None:
        self.tenant_id = tenant_id
        self.key_id = key_id
        self.period = period
        self.resets_at = resets_at
        self.too_large = too_large
        self.retry_after = None if too_large else retry_after
        owner = "this API key's" if key_id is not None else "your"
        name = (
            f"{owner} {period} spend budget"
            if period != "lifetime"
            else (f"{owner} lifetime spend budget")
        )
        if too_large:
            msg = (
                f"You exceeded your current quota: this request could cost more "
                f"than {name} holds. Reduce max_tokens or the prompt."
            )
        elif resets_at is None:
            msg = (
                f"You exceeded your current quota: {name} is spent and does not "
                "reset. Ask the operator to raise it."
            )
        else:
            msg = (
                f"You exceeded your current quota: {name} is spent; it resets "
                f"at {resets_at}."
            )
        super().__init__(msg)


class BudgetUnenforceableError(RequestRejectedError):
    """
    The tenant (or key) has a spend budget the server cannot enforce: no
    price table, or a budget in another currency than the prices. The
    request is refused rather than served unchecked (HTTP 403, code
    ``budget_not_enforceable``) until the operator fixes the budget or the
    prices.

    .. versionadded:: 0.1.0
    """

    http_status = 403
    error_code = "budget_not_enforceable"

    def __init__(self, tenant_id: str, why: str) -> None:
        self.tenant_id = tenant_id
        super().__init__(
            f"A spend budget of this account cannot be enforced ({why}); "
            "the request is refused. Ask the operator to fix it."
        )


class UnpricedModelError(RequestRejectedError, PermissionError):
    """
    The price table has no price in force for the requested model and no
    default price, so the request is refused rather than served for free
    (HTTP 403, type ``invalid_request_error``, code ``model_not_priced``,
    param ``model``).

    A 403, not a 5xx: retrying will not help, and the client can pick a
    priced model. Raised by `zerfoo_cloud.pricing.PriceTable.price_at`.

    .. versionadded:: 0.1.0
    """

    http_status = 403
    error_code = "model_not_priced"
    error_param = "model"

    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(
            f"The model {model!r} has no price on this server, so it cannot "
            "be used. Ask the operator to price it, or use another model."
        )


class MissingExtraError(CloudError, ImportError):
    """
    A feature was used whose optional extra is not installed.

    *extra* is the extra to install (``"saml"``, ``"proxy"``, ...), *feature*
    what needed it, and ``name`` (as on every `ImportError`) the module that
    was missing. The message is one line that says what to install.

    .. versionadded:: 0.1.0
    """

    def __init__(self, extra: str, feature: str, module: str | None) -> None:
        self.extra = extra
        self.feature = feature
        missing = f" ({module} is not installed)" if module else ""
        super().__init__(
            f"{feature} needs the {extra!r} extra{missing}: "
            f"pip install 'zerfoo-cloud[{extra}]', or pip install -e '.[{extra}]' "
            "in a checkout",
            name=module,
        )
