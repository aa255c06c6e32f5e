"""
The public API: every exported name exists and every public name is exported.
"""

from __future__ import annotations

import zerfoo_cloud


def test_all_is_sorted_and_complete() -> None:
    """__all__ is sorted, names real objects, and lists every public module attribute."""
    exported = zerfoo_cloud.__all__
    assert exported == sorted(exported)
    for name in exported:
        assert hasattr(zerfoo_cloud, name), name
    public = {
        name
        for name, value in vars(zerfoo_cloud).items()
        if not name.startswith("_")
        and name != "annotations"
        and getattr(value, "__module__", "").startswith("zerfoo_cloud")
    }
    assert public <= set(exported)


def test_every_export_is_documented() -> None:
    """Each exported class and function has a docstring."""
    for name in zerfoo_cloud.__all__:
        value = getattr(zerfoo_cloud, name)
        if callable(value):
            assert (value.__doc__ or "").strip(), name
