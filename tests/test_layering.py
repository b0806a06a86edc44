"""The package layering of docs/ARCHITECTURE.md, checked on the source: no import
cycle between lamina's packages (top-level modules count as packages of their
own) and no forbidden edge (engine -> cli, builder -> engine, builder -> cli,
core -> builder, store -> anything above it).  Imports inside functions count:
a lazy import is still an edge, and a lazy back-edge is how cycles creep in.

KNOWN lists the edges that break these rules today, each with why; the test
fails when a new one appears, and also when a listed one is gone (so the list
only shrinks).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "lamina"

# What the store may build on: the value types and helpers below it, and the archive code.
BELOW_STORE = {"errors", "record", "leanjson", "digest", "reference", "oci", "quoting", "units", "archive", "libc",
               "writeback"}
# Above the builder: what drives it.  "Core" is everything else but the builder itself.
DRIVERS = {"engine", "cli", "client", "__main__"}

# (importing module, imported module): edges that break a rule today, and why.
KNOWN = {
}


def _package(module: str) -> str | None:
    """The layering unit of a dotted module name: `lamina.store.db` -> `store`."""
    parts = module.split(".")
    if parts[0] != "lamina" or len(parts) == 1:
        return None
    return parts[1]


def _resolve(name: str) -> str | None:
    """The lamina module an import names (a `from pkg import sub` may name a submodule)."""
    parts = name.split(".")
    while parts:
        rel = Path(*parts[1:]) if len(parts) > 1 else Path()
        if (SRC / rel).with_suffix(".py").is_file() or (SRC / rel / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return None


def module_edges() -> set[tuple[str, str]]:
    """(importer, imported) for every `import lamina...` in src/lamina, lazy ones included."""
    edges = set()
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        importer = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if name.startswith("lamina."):
                    target = _resolve(name)
                    if target and target != importer:
                        edges.add((importer, target))
    return edges


def package_graph(edges) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        pa, pb = _package(a), _package(b)
        if pa and pb and pa != pb and (a, b) not in KNOWN:
            graph.setdefault(pa, set()).add(pb)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def forbidden(a: str, b: str) -> str | None:
    """Why the package edge a -> b breaks the layering, or None."""
    if b == "cli" and a != "__main__":
        return "only the launcher imports the CLI"
    if b == "client":
        return "the Python API is a front, like the CLI: nothing inside lamina imports it"
    if a == "builder" and b == "engine":
        return "the engine runs the builder, not the other way round"
    if b == "builder" and a not in DRIVERS:
        return "core -> builder: the builder sits on the core"
    if a == "store" and b not in BELOW_STORE:
        return "the store imports only what is below it"
    return None


def test_no_import_cycle_between_packages():
    assert cycles(package_graph(module_edges())) == []


def test_no_forbidden_edge():
    bad = sorted(f"{a} -> {b}: {forbidden(_package(a), _package(b))}"
                 for a, b in module_edges()
                 if (a, b) not in KNOWN and _package(a) != _package(b) and _package(a) and _package(b)
                 and forbidden(_package(a), _package(b)))
    assert bad == []


def test_known_exceptions_still_exist():
    """A fixed exception must leave KNOWN, so that it cannot come back unnoticed."""
    assert sorted(set(KNOWN) - module_edges()) == []


def test_the_checks_catch_what_they_are_for():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert forbidden("engine", "cli") and forbidden("builder", "engine") and forbidden("builder", "cli")
    assert forbidden("store", "runtime") and forbidden("store", "engine") and forbidden("imageops", "builder")
    assert not forbidden("engine", "builder") and not forbidden("store", "digest") and not forbidden("cli", "engine")
    edges = module_edges()
    assert ("lamina.engine.build", "lamina.builder.executor") in edges or any(
        a.startswith("lamina.engine") and b.startswith("lamina.builder") for a, b in edges)
    assert any(a == "lamina.runner" and b.startswith("lamina.network") for a, b in edges)  # lazy ones count too
