"""
Tenants: API keys, limits and the manager that stores them.

A tenant is a customer of the service. `TenantManager` creates, finds,
updates, re-keys and deletes tenants in a `TenantStore`; a `Tenant` handle
enforces the tenant's limits through a `LimiterStore`.

The records (`TenantConfig`, `TenantRecord`) and the key helpers live in
`zerfoo_cloud.tenant_records`, and `KeyRecord` (one of a tenant's API keys)
in `zerfoo_cloud.key_records`, below the stores; this package re-exports
them. Its modules:

- `zerfoo_cloud.tenants.validation`: checks of ids, keys, limits and allow lists;
- `zerfoo_cloud.tenants.key_checks`: checks of key names, expiries, graces
  and a key's own limits;
- `zerfoo_cloud.tenants.key_limits`: `KeyLimits`, the counters of a key's
  own limits at admission;
- `zerfoo_cloud.tenants.admission`: `Admission`, the outcome of an admission;
- `zerfoo_cloud.tenants.tenant`: `Tenant`, the handle that enforces limits;
- `zerfoo_cloud.tenants.key_cache`: the lookup cache of keys;
- `zerfoo_cloud.tenants.sign_out`: the stamps that sign a tenant's people out;
- `zerfoo_cloud.tenants.manager`: `TenantManager`.
"""

from __future__ import annotations

from zerfoo_cloud._redacted import REDACTED
from zerfoo_cloud.key_records import KeyRecord
from zerfoo_cloud.tenant_records import (
    API_KEY_PREFIX,
    MAX_SIGNED_OUT_SUBJECTS,
    TenantConfig,
    TenantRecord,
    generate_api_key,
    hash_api_key,
    new_incarnation,
)
from zerfoo_cloud.tenants.admission import Admission
from zerfoo_cloud.tenants.key_cache import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_CACHE_TTL,
    MAX_CACHE_TTL,
)
from zerfoo_cloud.tenants.key_limits import KeyLimits
from zerfoo_cloud.tenants.manager import TenantManager
from zerfoo_cloud.tenants.tenant import PERIOD_SECONDS, Tenant
from zerfoo_cloud.tenants.validation import (
    MAX_ALLOW_LIST,
    MAX_MODEL_NAME,
    TENANT_ID_PATTERN,
)

__all__ = [
    "API_KEY_PREFIX",
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_CACHE_TTL",
    "MAX_ALLOW_LIST",
    "MAX_CACHE_TTL",
    "MAX_MODEL_NAME",
    "MAX_SIGNED_OUT_SUBJECTS",
    "PERIOD_SECONDS",
    "REDACTED",
    "TENANT_ID_PATTERN",
    "Admission",
    "KeyLimits",
    "KeyRecord",
    "Tenant",
    "TenantConfig",
    "TenantManager",
    "TenantRecord",
    "generate_api_key",
    "hash_api_key",
    "new_incarnation",
]
