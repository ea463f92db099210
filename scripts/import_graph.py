"""The picture of bridge/'s packages and the direction of their imports, generated from the source.

    python -m scripts.import_graph            rewrite the picture in docs/architecture.md
    python -m scripts.import_graph --check    exit 1 if the picture there is not the generated one

It parses bridge/ with ``ast`` and imports nothing of it, so it works on a tree that does not import.
Every import counts: at the top, inside functions (lazy) and under ``if TYPE_CHECKING:``.
tests/test_layering.py checks the import rules on the same graph.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BRIDGE = ROOT / "bridge"
DOC = ROOT / "docs" / "architecture.md"
BEGIN = "<!-- import-graph:begin -->"
END = "<!-- import-graph:end -->"

# The layers, bottom up. A unit is a package of bridge/, or one module where a module is a layer
# (or a place) of its own: the three ports, the leaf modules and the composition modules.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("core",)),
    ("leaf modules", ("settings", "metrics", "telemetry")),
    (
        "ports",
        (
            "engine.ports",
            "engine.sideports",
            "engine.syncports",
            "queue.base",
            "state.base",
            "state.driftport",
        ),
    ),
    ("engine", ("engine",)),
    ("adapters", ("listeners", "systems", "queue", "state", "storage", "ops", "wire")),
    ("emulators", ("sandbox",)),
    (
        "composition",
        (
            "app",
            "cli",
            "demo",
            "applyproc",
            "register",
            "runtime",
            "mapcheck",
            "syncrun",
            "synccli",
            "infofile",
            "oneshot",
            "clisync",
            "tryout",
            "catchup",
            "drift",
            "front",
            "demoreplicas",
        ),
    ),
)
PORTS = {
    "engine.ports",
    "engine.sideports",
    "engine.syncports",
    "queue.base",
    "state.base",
    "state.driftport",
}
LEAVES = {"settings", "metrics", "telemetry"}
# Arrows into these are not drawn: nearly every unit imports them, so they would cross every layer.
NOT_DRAWN = {"core", *LEAVES}


def module_name(path: Path, root: Path = BRIDGE) -> str:
    """``bridge/queue/sqlite.py`` -> ``bridge.queue.sqlite``; a package's ``__init__`` is the package."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = BRIDGE) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def imported_names(path: Path, module: str, known: Iterable[str] = ()) -> set[str]:
    """Every absolute name ``path`` imports. ``from a import b`` names ``a.b`` when that is a known
    module, else ``a``; relative imports are resolved against ``module``."""
    known_modules = set(known)
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                names.add(candidate if candidate in known_modules else base)
    return names


def module_graph(root: Path = BRIDGE) -> dict[str, set[str]]:
    """Each module of bridge/ -> the modules of bridge/ it imports (itself excluded)."""
    found = modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in found.items():
        imported = imported_names(path, name, found)
        graph[name] = {target for target in imported if target in found and target != name}
    return graph


def unit_of(module: str) -> str:
    """The unit (a node of the picture) a module of bridge/ belongs to."""
    parts = module.split(".")[1:]
    if not parts:
        return "bridge"
    dotted = ".".join(parts[:2])
    return dotted if dotted in PORTS else parts[0]


def unit_graph(graph: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    units: dict[str, set[str]] = {}
    for source, targets in graph.items():
        if unit_of(source) == "bridge":  # the root package's empty __init__
            continue
        edges = units.setdefault(unit_of(source), set())
        edges.update(unit_of(t) for t in targets if unit_of(t) != unit_of(source))
    return units


def _node(unit: str) -> str:
    return unit.replace(".", "_")


def mermaid(units: Mapping[str, Iterable[str]]) -> str:
    """A Mermaid flowchart, top down: an arrow ``a --> b`` is "a imports b". Arrows into the core
    and the leaf modules are left out of the picture; the lines under the chart say who imports them."""
    placed = {unit for _, layer in LAYERS for unit in layer}
    unplaced = sorted(set(units) - placed)
    lines = ["```mermaid", "flowchart TB"]
    for title, layer in reversed((*LAYERS, ("not in a layer", tuple(unplaced)))):
        present = [unit for unit in layer if unit in units]
        if not present:
            continue
        lines.append(f'  subgraph {_node(title.replace(" ", "_"))}_layer ["{title}"]')
        lines.extend(f'    {_node(unit)}["{unit}"]' for unit in present)
        lines.append("  end")
    for source in sorted(units):
        for target in sorted(units[source]):
            if target not in NOT_DRAWN:
                lines.append(f"  {_node(source)} --> {_node(target)}")
    lines.append("```")
    lines.append("")
    lines.append("Arrows not drawn, into the core and the leaf modules:")
    lines.append("")
    for shared in sorted(NOT_DRAWN & set(units)):
        users = sorted(source for source, targets in units.items() if shared in targets)
        lines.append(f"- `{shared}` is imported by {', '.join(f'`{u}`' for u in users) or 'nothing'}")
    return "\n".join(lines)


def generated(root: Path = BRIDGE) -> str:
    return mermaid(unit_graph(module_graph(root)))


def picture_in(doc: str) -> str:
    """The text between the markers of ``doc`` (stripped)."""
    start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    return doc[start:end].strip()


def with_picture(doc: str, picture: str) -> str:
    start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    return f"{doc[:start]}\n{picture}\n{doc[end:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.import_graph", description=__doc__)
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the doc differs")
    args = parser.parse_args(argv)
    doc, picture = DOC.read_text(encoding="utf-8"), generated()
    if picture_in(doc) == picture:
        return 0
    if args.check:
        print(f"{DOC.relative_to(ROOT)}: the import graph is stale: run `make docs`", file=sys.stderr)
        return 1
    DOC.write_text(with_picture(doc, picture), encoding="utf-8")
    print(f"{DOC.relative_to(ROOT)}: import graph rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
