"""
The shape of the package's import graph: layers that only point down.

Every module of ``zerfoo_cloud`` is parsed with `ast` (nothing is imported),
and each import of the package's own modules becomes an edge to the module
it names: ``from zerfoo_cloud.x import y`` points at ``zerfoo_cloud.x.y``
when ``y`` is a submodule, else at ``zerfoo_cloud.x``. An import that runs
(at module level or inside a function) is a runtime edge; one under
``if TYPE_CHECKING:`` is a typing edge. Neither the runtime edges nor all
edges together may form a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import attrs
import pytest

PACKAGE = "zerfoo_cloud"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

#: Function-local imports of the package's own modules that remain: each
#: keeps an optional extra (see ``zerfoo_cloud/_extras.py`` and the extras
#: in pyproject.toml) from being imported before a feature needs it, and
#: names it. The test fails on any other one, so this list can only shrink.
DEFERRED = {
    # saml (lxml, xmlsec): ``import zerfoo_cloud`` loads SSO names on use.
    ("zerfoo_cloud", "zerfoo_cloud.sso"),
    # cli (click): the console script imports the CLI only when it runs, so
    # a missing extra is one line, not a traceback.
    ("zerfoo_cloud._console", "zerfoo_cloud.cli"),
    # proxy (aiohttp): ``serve`` builds an upstream proxy only with
    # --upstream (the second pair is the ``http`` package that import runs).
    ("zerfoo_cloud.serve", "zerfoo_cloud.http.proxy"),
    ("zerfoo_cloud.serve", "zerfoo_cloud.http"),
    # proxy (aiohttp): a pool of upstreams only with several --upstream, and
    # its metrics (prometheus-client) only with metrics on.
    ("zerfoo_cloud.serve", "zerfoo_cloud.http.pooled_proxy"),
    ("zerfoo_cloud.serve", "zerfoo_cloud._upstream_metrics"),
    # saml (lxml, xmlsec): ``serve`` reads IdP metadata only with --saml.
    ("zerfoo_cloud.serve", "zerfoo_cloud.sso"),
    # oidc (joserfc, httpx): ``serve`` reads OpenID providers only with --oidc,
    # and the command checks the --oidc file only when one is given.
    ("zerfoo_cloud.serve", "zerfoo_cloud.sso.oidc"),
    ("zerfoo_cloud.cli._serve_command", "zerfoo_cloud.sso"),
    ("zerfoo_cloud.cli._serve_command", "zerfoo_cloud.sso.oidc"),
    # metrics (prometheus-client): loaded only when metrics are asked for.
    ("zerfoo_cloud.serve", "zerfoo_cloud.metrics"),
    ("zerfoo_cloud.http._server", "zerfoo_cloud.metrics"),
    ("zerfoo_cloud.cli._serve_command", "zerfoo_cloud.metrics"),
    # web (starlette): every server mounts the admin API, but the other
    # commands (``tenant``, ``usage``, ``audit``) import ``serve`` without it.
    ("zerfoo_cloud.serve", "zerfoo_cloud.http.admin"),
    ("zerfoo_cloud.serve", "zerfoo_cloud.http.console"),
    # postgres (psycopg): ``db upgrade`` alone talks to PostgreSQL (the
    # second pair is the ``stores`` package that import runs).
    ("zerfoo_cloud.cli._db_commands", "zerfoo_cloud.stores.postgres"),
    ("zerfoo_cloud.cli._db_commands", "zerfoo_cloud.stores"),
    # server (anyio): the readiness probe, built only when ``serve`` runs.
    ("zerfoo_cloud.serve", "zerfoo_cloud._readiness"),
    # redis (redis-py): counters in Redis only for a redis:// URL.
    ("zerfoo_cloud.stores.open", "zerfoo_cloud.stores.redis"),
}


@attrs.frozen
class Edge:
    """One import of a package module by another: where it is and its kind."""

    source: str
    target: str
    line: int
    kind: str  # "module", "function" or "typing"


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str, item: str | None) -> str | None:
    if item is not None and f"{name}.{item}" in MODULES:
        return f"{name}.{item}"
    while name not in MODULES and "." in name:
        name = name.rpartition(".")[0]
    return name if name in MODULES else None


# postgres (psycopg): records in PostgreSQL only for a postgresql:// URL. The
# pair is the module that import resolves to in this tree (the ``stores``
# package while ``zerfoo_cloud.stores.postgres`` is not in it).
DEFERRED.add(
    (
        "zerfoo_cloud.stores.open",
        _resolve("zerfoo_cloud.stores.postgres", "PostgresStores") or "",
    )
)


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    names: list[tuple[str, str | None]]
    if isinstance(node, ast.Import):
        names = [(alias.name, None) for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".")
            if MODULES[module].name != "__init__.py":
                package.pop()
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        names = [(base, alias.name) for alias in node.names]
    found = [
        _resolve(name, item)
        for name, item in names
        if name == PACKAGE or name.startswith(PACKAGE + ".")
    ]
    return [target for target in found if target and target != module]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _edges(module: str) -> list[Edge]:
    edges: list[Edge] = []

    def visit(node: ast.AST, kind: str) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            edges.extend(
                Edge(module, target, node.lineno, kind)
                for target in _targets(module, node)
            )
            return
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.body:
                visit(child, "typing")
            for child in node.orelse:
                visit(child, kind)
            return
        inner = (
            "function"
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            else kind
        )
        for part in ast.iter_child_nodes(node):
            visit(part, inner)

    visit(ast.parse(MODULES[module].read_text(encoding="utf-8")), "module")
    return [*edges, *_package_edges(edges)]


def _package_edges(edges: list[Edge]) -> list[Edge]:
    # Importing ``zerfoo_cloud.a.b`` first runs ``zerfoo_cloud/a/__init__.py``:
    # from outside ``zerfoo_cloud.a`` that is an import of the package too.
    found = []
    for edge in edges:
        parts = edge.target.split(".")
        for end in range(2, len(parts)):
            package = ".".join(parts[:end])
            inside = edge.source == package or edge.source.startswith(package + ".")
            if package != edge.target and not inside:
                found.append(attrs.evolve(edge, target=package))
    return found


EDGES = [edge for module in sorted(MODULES) for edge in _edges(module)]


def _graph(kinds: set[str]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for edge in EDGES:
        if edge.kind in kinds:
            graph[edge.source].add(edge.target)
    return graph


def _cycles(kinds: set[str]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    graph = _graph(kinds)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = stack[stack.index(node) :]
            del stack[stack.index(node) :]
            on_stack.difference_update(component)
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def test_the_graph_is_read() -> None:
    # The parse sees the package: a known module-level and a known deferred
    # edge are both found, so an empty graph cannot pass the checks below.
    assert "zerfoo_cloud.stores.lmdb" in MODULES
    pairs = {(edge.source, edge.target, edge.kind) for edge in EDGES}
    assert ("zerfoo_cloud.audit", "zerfoo_cloud.audit.logger", "module") in pairs
    assert ("zerfoo_cloud", "zerfoo_cloud.sso", "function") in pairs


def test_the_runtime_import_graph_has_no_cycle() -> None:
    # A deferred import runs too, so it counts: hiding a cycle in a
    # function does not break it.
    cycles = _cycles({"module", "function"})
    assert not cycles, "import cycles:\n" + "\n".join(
        " <-> ".join(component) for component in cycles
    )


def test_runtime_and_typing_imports_together_have_no_cycle() -> None:
    # An import under ``if TYPE_CHECKING:`` is a dependency too: were it
    # made real, it must not close a loop. A type that a lower module needs
    # belongs in a lower module (a record) or a Protocol there.
    cycles = _cycles({"module", "function", "typing"})
    assert not cycles, "import cycles through typing imports:\n" + "\n".join(
        " <-> ".join(component) for component in cycles
    )


def test_the_cycle_check_finds_a_cycle() -> None:
    # The check is not vacuous: a typing edge from the bottom of the graph
    # (errors) to a module that imports it closes a loop it reports.
    edge = Edge("zerfoo_cloud.errors", "zerfoo_cloud.limits", 1, "typing")
    EDGES.append(edge)
    try:
        found = _cycles({"module", "typing"})
        assert any({edge.source, edge.target} <= set(c) for c in found)
    finally:
        EDGES.remove(edge)


def test_no_new_function_local_import_of_the_package() -> None:
    deferred = sorted(
        f"{edge.source}:{edge.line} -> {edge.target}"
        for edge in EDGES
        if edge.kind == "function" and (edge.source, edge.target) not in DEFERRED
    )
    assert not deferred, "import these at the top of the module:\n" + "\n".join(
        deferred
    )


@pytest.mark.parametrize("pair", sorted(DEFERRED))
def test_each_allowed_deferred_import_still_exists(pair: tuple[str, str]) -> None:
    # A deferred import that was moved to the top is struck from DEFERRED.
    found = {(e.source, e.target) for e in EDGES if e.kind == "function"}
    assert pair in found
