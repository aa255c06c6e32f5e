"""
The marker that stands where a secret was: one spelling for every record.

`zerfoo_cloud.tenants` (configs and reprs), `zerfoo_cloud.audit` (entries)
and the admin API (audited paths) show it instead of an API key.
"""

from __future__ import annotations

__all__ = ["REDACTED"]

#: What stands instead of an API key or other secret in a config, a repr or
#: an audit entry.
REDACTED = "<redacted>"
