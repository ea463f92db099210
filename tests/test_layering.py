"""The architecture's import rules, checked on the source of the whole of bridge/ (docs/architecture.md).

Layers, bottom up; a module may import its own layer and those its row names, nothing else of bridge/:

    core          pure (no I/O library): imports only core
    leaf modules  settings, metrics, telemetry: core and each other; anyone may import them
    ports         engine/ports.py, engine/sideports.py, queue/base.py, state/base.py,
                  state/driftport.py: core, leaves
    engine        bridge/engine/*: core, leaves, ports (never an adapter)
    adapters      listeners, systems, queue/*, state/*, storage, ops, wire: core, leaves, ports
                  (not the engine: only composition puts the two together)
    composition   app, cli, demo, applyproc, register, runtime, mapcheck, infofile, oneshot,
                  clisync, tryout, catchup, drift: anything

The sandbox (the emulators) imports only itself and bridge.wire, and only demo.py and cli.py import it.
No import circle, between modules or between units (a package, or one port module). Every import
counts: at the top, inside a function, and under ``if TYPE_CHECKING:`` (it still draws the arrow).
The graph is the one scripts/import_graph.py draws in docs/architecture.md.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from scripts import import_graph

BRIDGE = import_graph.BRIDGE
MAX_LINES = 500

LAYER_OF_UNIT: dict[str, str] = {
    unit: layer for layer, units in import_graph.LAYERS if layer != "emulators" for unit in units
}
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "leaf modules": {"core", "leaf modules"},
    "ports": {"core", "leaf modules", "ports"},
    "engine": {"core", "leaf modules", "ports", "engine"},
    "adapters": {"core", "leaf modules", "ports", "adapters"},
    "composition": {"core", "leaf modules", "ports", "engine", "adapters", "composition"},
}
MAY_IMPORT_SANDBOX = {"bridge.demo", "bridge.demoreplicas", "bridge.cli"}
SANDBOX_MAY_IMPORT = ("bridge.sandbox", "bridge.wire")
IO_LIBRARIES = (
    "aiohttp",
    "aiosqlite",
    "sqlite3",
    "msal",
    "requests",
    "azure",
    "socket",
    "ssl",
    "http",
    "urllib",
    "subprocess",
    "uvloop",
    "multidict",
    "yarl",
)
GRAPH = import_graph.module_graph()


def _in(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _sandbox(module: str) -> bool:
    return _in(module, "bridge.sandbox")


def _layer(module: str) -> str:
    return LAYER_OF_UNIT[import_graph.unit_of(module)]


def _circles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))
    return circles


def _upward_imports() -> set[str]:
    found = set()
    for source, targets in GRAPH.items():
        if _sandbox(source) or source == "bridge":
            continue
        allowed = ALLOWED[_layer(source)]
        found.update(
            f"{source} -> {target}"
            for target in targets
            if target != "bridge" and not _sandbox(target) and _layer(target) not in allowed
        )
    return found


def _oversized() -> set[str]:
    return {
        f"{name}: over {MAX_LINES} lines"
        for name, path in import_graph.modules().items()
        if len(path.read_text(encoding="utf-8").splitlines()) > MAX_LINES
    }


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m for m in GRAPH if m != "bridge" and not _sandbox(m) and m not in _placed())
    assert unplaced == [], "add the module's package or module to import_graph.LAYERS"


def _placed() -> set[str]:
    return {m for m in GRAPH if import_graph.unit_of(m) in LAYER_OF_UNIT}


def test_no_import_goes_up_a_layer() -> None:
    assert _upward_imports() == set()


def test_the_leaf_modules_import_only_the_core_and_each_other() -> None:
    offenders = {
        f"{source} -> {target}"
        for source, targets in GRAPH.items()
        if import_graph.unit_of(source) in import_graph.LEAVES
        for target in targets
        if _layer(target) not in {"core", "leaf modules"}
    }
    assert offenders == set()


def test_no_import_circle_between_modules() -> None:
    assert _circles(GRAPH) == []


def test_no_import_circle_between_packages() -> None:
    graph = GRAPH
    units = import_graph.unit_graph(graph)
    packages: dict[str, set[str]] = {}
    for source, targets in graph.items():
        package = source.split(".")[:2]
        packages.setdefault(".".join(package), set()).update(
            ".".join(t.split(".")[:2]) for t in targets if t.split(".")[:2] != package
        )
    assert (_circles(units), _circles(packages)) == ([], [])


def test_package_inits_import_nothing_of_the_bridge() -> None:
    # The graph leaves out the implicit import of a package's __init__: sound only while they are empty.
    # The emulators' schema package re-exports its modules' names (the names importable before it was
    # split); inside the sandbox that hides no arrow the rules care about: the sandbox may import only
    # itself (and bridge.wire), which the transitive test below checks through the re-export too.
    inits = {
        name
        for name, path in import_graph.modules().items()
        if path.name == "__init__.py" and name != "bridge.sandbox.schema"
    }
    assert {name: GRAPH[name] for name in inits if GRAPH[name]} == {}
    assert all(_sandbox(target) for target in GRAPH["bridge.sandbox.schema"])


def test_the_bridge_never_imports_the_sandbox() -> None:
    offenders = {
        f"{source} -> {target}"
        for source, targets in GRAPH.items()
        if not _sandbox(source) and source not in MAY_IMPORT_SANDBOX
        for target in targets
        if _sandbox(target)
    }
    assert offenders == set()


def test_the_sandbox_imports_only_itself_and_the_wire_module() -> None:
    # Followed through: what the sandbox loads of bridge.wire must not pull in the rest of the bridge.
    seen: set[str] = set()
    todo = [m for m in GRAPH if _sandbox(m)]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(GRAPH[module])
    assert sorted(m for m in seen if not any(_in(m, p) for p in SANDBOX_MAY_IMPORT)) == []


def test_the_core_is_pure() -> None:
    offenders = {
        name: sorted(n for n in import_graph.imported_names(path, name) if n.split(".")[0] in IO_LIBRARIES)
        for name, path in import_graph.modules().items()
        if _in(name, "bridge.core")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_module_is_over_500_lines() -> None:
    assert _oversized() == set()


def test_serving_the_bridge_loads_no_emulator_code() -> None:
    probe = (
        "import sys, bridge.cli, bridge.app; bridge.cli._parser().parse_args(['serve', '--config', 'x']);"
        "print(sorted(m for m in sys.modules if m.startswith('bridge.sandbox')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_architecture_doc_shows_the_generated_import_graph() -> None:
    doc = import_graph.DOC.read_text(encoding="utf-8")
    assert import_graph.picture_in(doc) == import_graph.generated(), "run `make docs`"


def test_every_kind_of_import_draws_an_arrow(tmp_path: Path) -> None:
    package = tmp_path / "bridge"
    (package / "engine").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "engine" / "__init__.py").write_text("")
    (package / "settings.py").write_text("")
    (package / "metrics.py").write_text("")
    (package / "engine" / "ports.py").write_text("")
    (package / "engine" / "worker.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import ports\n"  # relative, naming a module
        "if TYPE_CHECKING:\n    from bridge.settings import Settings\n"
        "def later():\n    import bridge.metrics\n"
    )
    graph = import_graph.module_graph(package)
    assert graph["bridge.engine.worker"] == {"bridge.engine.ports", "bridge.settings", "bridge.metrics"}
