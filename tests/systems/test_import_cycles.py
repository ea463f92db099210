"""No import circle among the modules of a package (checked on the source: every import counts,
the lazy ones inside functions and those under ``TYPE_CHECKING`` too, since each is a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

BRIDGE = Path(__file__).resolve().parents[2] / "bridge"


def module_graph(folder: Path, package: str) -> dict[str, set[str]]:
    """Module name -> the modules of the same package it imports."""
    names = {
        ".".join([package, *p.relative_to(folder).with_suffix("").parts]).removesuffix(".__init__"): p
        for p in folder.rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1
                    parent = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                    base = f"{parent}.{base}".rstrip(".")
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)  # from pkg import module
        graph[name] = {m for m in found if m in names and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected groups of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_no_import_circle_among_the_system_clients() -> None:
    assert cycles(module_graph(BRIDGE / "systems", "bridge.systems")) == []


def test_the_wire_formats_have_no_import_circle() -> None:
    assert cycles(module_graph(BRIDGE / "wire", "bridge.wire")) == []


def test_a_circle_through_a_lazy_import_is_found(tmp_path: Path) -> None:
    """The shape the clients had: http imported coalesce inside a function, coalesce imported batch,
    batch imported http."""
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "http.py").write_text("def f():\n    from pkg.coalesce import C\n")
    (tmp_path / "coalesce.py").write_text("from pkg import batch\n")
    (tmp_path / "batch.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .http import f\n"
    )
    (tmp_path / "leaf.py").write_text("import pkg.batch\n")
    graph = module_graph(tmp_path, "pkg")
    assert graph["pkg.leaf"] == {"pkg.batch"} and graph["pkg.batch"] == {"pkg.http"}
    assert cycles(graph) == [["pkg.batch", "pkg.coalesce", "pkg.http"]]
