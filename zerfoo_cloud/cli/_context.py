"""
What every command receives: the store folder given by ``--db`` or
``ZERFOO_CLOUD_DB``, and library errors turned into one-line messages.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.errors import CloudError
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.tenants import TenantManager

with needs_extra("cli", "the zerfoo-cloud command"):
    import click


#: The environment variable naming the store folder when ``--db`` is absent.
DB_ENV = "ZERFOO_CLOUD_DB"

F = TypeVar("F", bound=Callable[..., Any])


class _Context:
    """
    What every command needs: where the store is, and how to print.
    """

    def __init__(self, db: str | None) -> None:
        self.db = db

    @contextmanager
    def stores(self, *, create: bool = False) -> Iterator[LMDBStores]:
        if not self.db:
            msg = f"no store given: pass --db PATH or set {DB_ENV}"
            raise click.UsageError(msg)
        path = Path(self.db)
        if not create and not (path / "data.mdb").exists():
            msg = (
                f"no zerfoo-cloud store at {str(path)!r}: check --db / {DB_ENV}, "
                "or create the first tenant with 'zerfoo-cloud tenant create'"
            )
            raise click.ClickException(msg)
        stores = LMDBStores.open(path)
        try:
            yield stores
        finally:
            stores.close()

    @contextmanager
    def manager(self, *, create: bool = False) -> Iterator[TenantManager]:
        with self.stores(create=create) as stores:
            yield TenantManager(stores.tenants, limits=stores.limits)


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
