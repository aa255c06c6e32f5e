"""
zerfoo-cloud: turn any OpenAI-compatible inference app into a multi-tenant
managed service.

The names below are the public API; everything else may change without
notice. See ``docs/`` for the concepts and how to deploy.

The SSO names need the ``saml`` extra and are imported on first use, so
``import zerfoo_cloud`` loads no optional dependency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zerfoo_cloud.audit import (
    AuditAction,
    AuditEntry,
    AuditLogger,
    AuditProblem,
    AuditResult,
    AuditVerification,
)
from zerfoo_cloud.errors import (
    AuditChainError,
    BudgetExceededError,
    BudgetUnenforceableError,
    CloudError,
    CorruptRecordError,
    GPUUnavailableError,
    InvalidConfigError,
    InvalidRequestError,
    KeyNotFoundError,
    MissingExtraError,
    ModelFormatError,
    ModelNotAllowedError,
    ModelNotLoadedError,
    ModelTooLargeError,
    OIDCError,
    RateLimitedError,
    RequestOverBudgetError,
    RequestRejectedError,
    RequestTooLargeError,
    ResourceBusyError,
    ResourceError,
    SAMLError,
    SchemaMismatchError,
    SessionError,
    StoreError,
    StoreFullError,
    StoreUnavailableError,
    TenantExistsError,
    TenantNotFoundError,
    UnauthorizedError,
    UpstreamError,
)
from zerfoo_cloud.http import CloudServer, billing_middleware, report_usage
from zerfoo_cloud.key_records import KeyRecord
from zerfoo_cloud.limits import BucketState, Decision, Rate, RateLimiter
from zerfoo_cloud.metering import (
    BillingRecord,
    NDJSONFileRecorder,
    NDJSONRecorder,
    TokenMeter,
    UsageEvent,
    UsageRecorder,
    UsageSummary,
)
from zerfoo_cloud.resources import ModelInfo, ResourceManager
from zerfoo_cloud.tenants import (
    Admission,
    Tenant,
    TenantConfig,
    TenantManager,
    TenantRecord,
    generate_api_key,
    hash_api_key,
)

if TYPE_CHECKING:
    from zerfoo_cloud.sso import (
        SAMLMetadata,
        SAMLProvider,
        SSOIdentity,
        SSOProvider,
        parse_saml_metadata,
    )

#: The SSO names, imported on first use: they need the saml extra.
_SSO_NAMES = frozenset(
    {
        "SAMLMetadata",
        "SAMLProvider",
        "SSOIdentity",
        "SSOProvider",
        "parse_saml_metadata",
    }
)

__version__ = "0.1.0.dev0"

__all__ = [
    "Admission",
    "AuditAction",
    "AuditChainError",
    "AuditEntry",
    "AuditLogger",
    "AuditProblem",
    "AuditResult",
    "AuditVerification",
    "BillingRecord",
    "BucketState",
    "BudgetExceededError",
    "BudgetUnenforceableError",
    "CloudError",
    "CloudServer",
    "CorruptRecordError",
    "Decision",
    "GPUUnavailableError",
    "InvalidConfigError",
    "InvalidRequestError",
    "KeyNotFoundError",
    "KeyRecord",
    "MissingExtraError",
    "ModelFormatError",
    "ModelInfo",
    "ModelNotAllowedError",
    "ModelNotLoadedError",
    "ModelTooLargeError",
    "NDJSONFileRecorder",
    "NDJSONRecorder",
    "OIDCError",
    "Rate",
    "RateLimitedError",
    "RateLimiter",
    "RequestOverBudgetError",
    "RequestRejectedError",
    "RequestTooLargeError",
    "ResourceBusyError",
    "ResourceError",
    "ResourceManager",
    "SAMLError",
    "SAMLMetadata",
    "SAMLProvider",
    "SSOIdentity",
    "SSOProvider",
    "SchemaMismatchError",
    "SessionError",
    "StoreError",
    "StoreFullError",
    "StoreUnavailableError",
    "Tenant",
    "TenantConfig",
    "TenantExistsError",
    "TenantManager",
    "TenantNotFoundError",
    "TenantRecord",
    "TokenMeter",
    "UnauthorizedError",
    "UpstreamError",
    "UsageEvent",
    "UsageRecorder",
    "UsageSummary",
    "__version__",
    "billing_middleware",
    "generate_api_key",
    "hash_api_key",
    "parse_saml_metadata",
    "report_usage",
]


def __getattr__(name: str) -> object:
    """
    Import an SSO name from `zerfoo_cloud.sso` on first use.
    """
    if name not in _SSO_NAMES:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    from zerfoo_cloud import sso

    value: object = getattr(sso, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_SSO_NAMES})
