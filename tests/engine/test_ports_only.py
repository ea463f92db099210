"""The engine reaches the systems, the queue and the state through ports only (docs/architecture.md):
no module of ``bridge/engine`` imports an adapter or the composition. The apply processes' two
modules are left out: they start processes and build clients (composition, moving out of engine/)."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "bridge" / "engine"
COMPOSITION_HERE = {"applyproc.py", "pool.py"}
ADAPTERS = (
    "bridge.systems",
    "bridge.listeners",
    "bridge.ops",
    "bridge.storage",
    "bridge.queue.sqlite",
    "bridge.state.sqlite",
    "bridge.sandbox",
    "bridge.app",
    "bridge.cli",
    "bridge.demo",
)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_engine_imports_no_adapter() -> None:
    modules = [p for p in sorted(ENGINE.glob("*.py")) if p.name not in COMPOSITION_HERE]
    assert len(modules) > 5  # the folder was found
    offenders = {
        p.name: sorted(n for n in _imports(p) if n.startswith(ADAPTERS))
        for p in modules
        if any(n.startswith(ADAPTERS) for n in _imports(p))
    }
    assert offenders == {}


def test_the_system_sides_satisfy_the_engine_ports() -> None:
    # Checked by mypy too (sides_for returns Sides); this keeps it true at run time for the protocols'
    # methods, which a structural type only checks where it is used.
    from bridge.engine.sideports import DataverseSide, Side
    from bridge.systems.sides import CdsSide, ScmSide

    def members(protocol: type) -> set[str]:
        return {n for n in vars(protocol) if not n.startswith("_")}

    assert members(Side) <= set(dir(ScmSide))
    assert members(Side) | members(DataverseSide) <= set(dir(CdsSide))
