"""
`ClosedOnExit`: the context manager of every object that is closed once
used, so ``with obj:`` means the same everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

__all__ = ["ClosedOnExit"]


class ClosedOnExit:
    """
    A mixin: ``with obj:`` gives *obj* and calls ``obj.close()`` when the
    block ends, however it ends. The class provides ``close()``; a
    ``close`` with more parameters needs defaults for all of them.
    """

    __slots__ = ()

    def close(self) -> None:
        """
        Release what the object holds (the class says what).
        """
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
