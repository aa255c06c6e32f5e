"""
The audit records: what one audit entry holds and how entries are chained.

`actions` (`AuditAction`, `AuditResult`), `cleaning` (what an entry's fields
may hold), `entry` (`AuditEntry`, `make_entry`) and `chain` (`ChainLink`,
`entry_json`, `entry_hash`, `link_entry`). They sit below the store
protocols, so every store backend and `zerfoo_cloud.stores.protocols` can
name them without importing the audit service (`zerfoo_cloud.audit`, which
re-exports every name here).
"""
