"""
SOC 2 audit logging: a tamper-evident log of who did what.

`AuditLogger` stores one `AuditEntry` per auditable event in an
`AuditStore`. Entries never hold API keys, request or response bodies, or
query strings: an entry has no field for headers or bodies, and its
converters clean what it does hold (see `AuditEntry`).

**Hash chain.** In a store that keeps a chain (memory and LMDB do: the
`zerfoo_cloud.stores.protocols.ChainedAuditStore` capability) every entry
carries a sequence number *seq*, the hash of the entry before it
(*prev_hash*) and its own *hash*: SHA-256 over its content and *prev_hash*,
or HMAC-SHA256 keyed with the logger's *secret* when one is set. The store
links entries inside its write transaction, so several processes appending
at once still form one chain. `AuditLogger.verify` walks the log and reports
the first entry that was altered, removed, inserted or moved;
`AuditLogger.purge` drops old entries and keeps an *anchor* (the last
dropped entry's seq and hash), so the rest stays verifiable.

Without a secret the chain catches accidental damage and naive edits, but
whoever can write the store can rebuild every hash: set a secret (kept
outside the store) for evidence that holds against them.

**Modules.** The records live below the store protocols, in
`zerfoo_cloud.audit_records`: `actions` (`AuditAction`, `AuditResult`),
`cleaning` (what an entry's fields may hold), `entry` (`AuditEntry`,
`make_entry`) and `chain` (`ChainLink`, `entry_json`, `entry_hash`,
`link_entry`). This package adds `verify` (`verify_chain`,
`AuditVerification`) and `logger` (`AuditLogger`); every name is importable
from this package. `actions`, `cleaning`, `entry` and `chain` are still
importable here under their former names, for the writer modules that use
them; new code imports from this package or `zerfoo_cloud.audit_records`.
"""

from __future__ import annotations

from zerfoo_cloud._field_limits import MAX_TENANT_ID_BYTES
from zerfoo_cloud._redacted import REDACTED
from zerfoo_cloud.audit.logger import MIN_SECRET_BYTES, AuditLogger
from zerfoo_cloud.audit.verify import AuditProblem, AuditVerification, verify_chain
from zerfoo_cloud.audit_records.actions import AuditAction, AuditResult
from zerfoo_cloud.audit_records.chain import (
    GENESIS,
    ChainLink,
    entry_hash,
    entry_json,
    link_entry,
)
from zerfoo_cloud.audit_records.chain import (
    _Linker as _Linker,  # the writer process links with it
)
from zerfoo_cloud.audit_records.cleaning import (
    INVALID,
    MAX_PATH_LENGTH,
    MAX_RESOURCE_LENGTH,
    strip_query,
)
from zerfoo_cloud.audit_records.entry import AuditEntry, make_entry

__all__ = [
    "GENESIS",
    "INVALID",
    "MAX_PATH_LENGTH",
    "MAX_RESOURCE_LENGTH",
    "MAX_TENANT_ID_BYTES",
    "MIN_SECRET_BYTES",
    "REDACTED",
    "AuditAction",
    "AuditEntry",
    "AuditLogger",
    "AuditProblem",
    "AuditResult",
    "AuditVerification",
    "ChainLink",
    "entry_hash",
    "entry_json",
    "link_entry",
    "make_entry",
    "strip_query",
    "verify_chain",
]
