"""
No float in money: the pricing package has no float literal, no float()
call and no true division, so no amount can pass through a float.
"""

from __future__ import annotations

import ast
from pathlib import Path

import zerfoo_cloud.pricing

PACKAGE = Path(zerfoo_cloud.pricing.__file__).parent


def _makes_a_float(node: ast.AST) -> bool:
    return (
        (isinstance(node, ast.Constant) and type(node.value) is float)
        or (
            isinstance(node, (ast.BinOp, ast.AugAssign))
            and isinstance(node.op, ast.Div)
        )
        or (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"float", "round"}
        )
    )


def _float_uses(tree: ast.AST) -> list[int]:
    return [
        getattr(node, "lineno", 0) for node in ast.walk(tree) if _makes_a_float(node)
    ]


def test_the_package_never_makes_a_float() -> None:
    files = sorted(PACKAGE.glob("*.py"))
    assert len(files) >= 5
    for path in files:
        lines = _float_uses(ast.parse(path.read_text(encoding="utf-8")))
        assert not lines, f"{path.name}: lines {lines}"


def test_the_check_finds_a_float() -> None:
    assert _float_uses(ast.parse("x = 1 / 2")) == [1]
    assert _float_uses(ast.parse("x = float('0.1')")) == [1]
    assert _float_uses(ast.parse("x = 0.5")) == [1]
    assert _float_uses(ast.parse("x = 1 // 2")) == []
