"""
What every command receives: the records store given by ``--db`` or
``ZERFOO_CLOUD_DB`` (a folder or a URL), the counters store given by
``--counters`` or ``ZERFOO_CLOUD_COUNTERS``, and library errors turned into
one-line messages.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.errors import CloudError
from zerfoo_cloud.stores.open import (
    RECORDS_ENV,
    Stores,
    lmdb_folder,
    open_stores,
)
from zerfoo_cloud.tenants import TenantManager

with needs_extra("cli", "the zerfoo-cloud command"):
    import click


#: The environment variable naming the records store when ``--db`` is absent.
DB_ENV = RECORDS_ENV

F = TypeVar("F", bound=Callable[..., Any])


class _Context:
    """
    What every command needs: where the stores are, and how to print.
    """

    def __init__(self, db: str | None, counters: str | None = None) -> None:
        self.db = db
        self.counters = counters or None

    @contextmanager
    def stores(self, *, create: bool = False) -> Iterator[Stores]:
        if not self.db:
            msg = f"no store given: pass --db PATH|URL or set {DB_ENV}"
            raise click.UsageError(msg)
        folder = lmdb_folder(self.db)
        if folder is not None and not create and not (folder / "data.mdb").exists():
            msg = (
                f"no zerfoo-cloud store at {str(folder)!r}: check --db / {DB_ENV}, "
                "or create the first tenant with 'zerfoo-cloud tenant create'"
            )
            raise click.ClickException(msg)
        stores = open_stores(self.db, self.counters)
        try:
            yield stores
        finally:
            stores.close()

    @contextmanager
    def manager(self, *, create: bool = False) -> Iterator[TenantManager]:
        with self.stores(create=create) as stores:
            # With Redis counters, each change is announced to every host.
            manager = TenantManager(
                stores.tenants, limits=stores.limits, revocations=stores.revocations
            )
            try:
                yield manager
            finally:
                manager.close()


def _handle_errors(fn: F) -> F:
    """
    Turn library errors into one-line messages (no traceback).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CloudError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]
