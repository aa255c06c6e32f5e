"""
Each concept is defined in one place in the package's source.

A constant, the status -> audit-result mapping, the OpenAI error body and the
request-id generator each have one definition that every other module
imports, so two copies can never drift apart.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import zerfoo_cloud

PACKAGE = Path(zerfoo_cloud.__file__).parent

#: Names that spell one concept: at most one module may assign any of them.
CONCEPT_NAMES = {
    "redaction marker": {"REDACTED", "_REDACTED"},
    "model-name limit": {"MAX_MODEL_LENGTH", "MAX_MODEL_NAME"},
    "tenant-id limit": {"MAX_TENANT_ID_BYTES", "MAX_TENANT_BYTES"},
    "audit-secret variable": {"AUDIT_SECRET_ENV"},
    "summary keys": {"SUMMARY_KEYS", "_SUMMARY_KEYS"},
    "UTF-8 byte order mark": {"_UTF8_BOM", "_BOM"},
}
#: Functions that exist once: a second definition is a second copy.
ONE_FUNCTION = ("audit_result", "new_request_id", "openai_error_body")


def _modules() -> dict[str, ast.Module]:
    return {
        str(path.relative_to(PACKAGE)): ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _assigned(tree: ast.Module) -> dict[str, ast.expr]:
    found: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value
        elif (
            isinstance(node, ast.AnnAssign)
            and node.value is not None
            and isinstance(node.target, ast.Name)
        ):
            found[node.target.id] = node.value
    return found


def test_each_constant_concept_is_assigned_in_one_module() -> None:
    """REDACTED, the model-name and tenant-id limits and the others live once."""
    owners: dict[str, list[str]] = defaultdict(list)
    for module, tree in _modules().items():
        names = _assigned(tree)
        for concept, spellings in CONCEPT_NAMES.items():
            for name in spellings & names.keys():
                if not isinstance(names[name], ast.Name | ast.Attribute):
                    owners[concept].append(f"{module}:{name}")
    twice = {concept: where for concept, where in owners.items() if len(where) > 1}
    assert twice == {}


def test_no_string_constant_is_defined_in_two_modules() -> None:
    """A module-level string constant (a marker, a message, a variable name) exists once."""
    owners: dict[str, set[str]] = defaultdict(set)
    for module, tree in _modules().items():
        for name, value in _assigned(tree).items():
            if (
                name.lstrip("_").isupper()
                and isinstance(value, ast.Constant)
                and isinstance(value.value, str)
                and len(value.value) > 1
                and name != "__version__"
            ):
                owners[value.value].add(module)
    twice = {value: sorted(where) for value, where in owners.items() if len(where) > 1}
    assert twice == {}


def test_one_definition_of_each_shared_function() -> None:
    """audit_result, new_request_id and the OpenAI error body are defined once."""
    found: dict[str, list[str]] = defaultdict(list)
    for module, tree in _modules().items():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and node.name in ONE_FUNCTION
            ):
                found[node.name].append(module)
    assert {name: len(found[name]) for name in ONE_FUNCTION} == dict.fromkeys(
        ONE_FUNCTION, 1
    )


def test_only_the_error_builder_writes_the_openai_error_shape() -> None:
    """
    A literal ``{"error": {"message": ...}}`` is written in one module only.
    """
    writers = set()
    for module, tree in _modules().items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Dict):
                continue
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
            if {"message", "type", "code"} <= keys:
                writers.add(module)
    assert writers == {"_openai_error.py"}


def test_request_ids_come_from_one_generator() -> None:
    """No module makes ids with uuid; only metering defines new_request_id."""
    for module, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert all(a.name != "uuid" for a in node.names), module
            elif isinstance(node, ast.ImportFrom):
                assert node.module != "uuid", module
