"""
Size limits of the fields that records and allow lists share.

Billing records, audit entries, allow lists and the stores' keys all bound a
tenant id and a model name by the numbers here, so a value one part accepts
is never refused by another.
"""

from __future__ import annotations

__all__ = ["MAX_MODEL_LENGTH", "MAX_TENANT_ID_BYTES"]

#: A tenant id in a record (and in a store's key) is at most this many bytes
#: of UTF-8.
MAX_TENANT_ID_BYTES = 256
#: A model name (in a record or an allow list) is at most this many
#: characters.
MAX_MODEL_LENGTH = 256
