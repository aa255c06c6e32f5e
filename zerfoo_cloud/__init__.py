"""
zerfoo-cloud: turn any OpenAI-compatible inference app into a multi-tenant
managed service.

The names below are the public API; everything else may change without
notice. See ``docs/`` for the concepts and how to deploy.
"""

from __future__ import annotations

from zerfoo_cloud.audit import AuditAction, AuditEntry, AuditLogger, AuditResult
from zerfoo_cloud.errors import (
    CloudError,
    CorruptRecordError,
    InvalidConfigError,
    ModelNotAllowedError,
    ModelNotLoadedError,
    ModelTooLargeError,
    RateLimitedError,
    RequestTooLargeError,
    SAMLError,
    SchemaMismatchError,
    StoreError,
    StoreFullError,
    TenantExistsError,
    TenantNotFoundError,
    UnauthorizedError,
)
from zerfoo_cloud.http import CloudServer, billing_middleware, report_usage
from zerfoo_cloud.limits import BucketState, Decision, Rate, RateLimiter
from zerfoo_cloud.metering import (
    BillingRecord,
    NDJSONRecorder,
    TokenMeter,
    UsageEvent,
    UsageRecorder,
)
from zerfoo_cloud.tenants import (
    Admission,
    Tenant,
    TenantConfig,
    TenantManager,
    TenantRecord,
    generate_api_key,
    hash_api_key,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "Admission",
    "AuditAction",
    "AuditEntry",
    "AuditLogger",
    "AuditResult",
    "BillingRecord",
    "BucketState",
    "CloudError",
    "CloudServer",
    "CorruptRecordError",
    "Decision",
    "InvalidConfigError",
    "ModelNotAllowedError",
    "ModelNotLoadedError",
    "ModelTooLargeError",
    "NDJSONRecorder",
    "Rate",
    "RateLimitedError",
    "RateLimiter",
    "RequestTooLargeError",
    "SAMLError",
    "SchemaMismatchError",
    "StoreError",
    "StoreFullError",
    "Tenant",
    "TenantConfig",
    "TenantExistsError",
    "TenantManager",
    "TenantNotFoundError",
    "TenantRecord",
    "TokenMeter",
    "UnauthorizedError",
    "UsageEvent",
    "UsageRecorder",
    "__version__",
    "billing_middleware",
    "generate_api_key",
    "hash_api_key",
    "report_usage",
]
