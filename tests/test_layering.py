"""The architecture's import rules, checked on the source (see docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

BRIDGE = Path(__file__).resolve().parents[1] / "bridge"
# Only the demo and the CLI's ``sandbox`` command may start the emulators.
MAY_IMPORT_SANDBOX = {BRIDGE / "demo.py", BRIDGE / "cli.py"}
IO_LIBRARIES = ("aiohttp", "aiosqlite", "sqlite3", "msal", "requests", "azure")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def test_the_bridge_never_imports_the_sandbox() -> None:
    offenders = [
        str(p.relative_to(BRIDGE))
        for p in _modules(BRIDGE)
        if "sandbox" not in p.relative_to(BRIDGE).parts
        and p not in MAY_IMPORT_SANDBOX
        and any(name.startswith("bridge.sandbox") for name in _imports(p))
    ]
    assert offenders == []


def _outside(name: str, *allowed: str) -> bool:
    """``name`` is a module of the bridge other than the ``allowed`` packages."""
    return (name == "bridge" or name.startswith("bridge.")) and not any(
        name == a or name.startswith(a + ".") for a in allowed
    )


def test_the_sandbox_never_imports_the_bridge() -> None:
    """Only the wire formats both sides share (``bridge.wire``), which import nothing else of the
    bridge themselves."""
    offenders = [
        str(p.relative_to(BRIDGE))
        for p in _modules(BRIDGE / "sandbox")
        if any(_outside(name, "bridge.sandbox", "bridge.wire") for name in _imports(p))
    ]
    offenders += [
        str(p.relative_to(BRIDGE))
        for p in _modules(BRIDGE / "wire")
        if any(_outside(name, "bridge.wire") for name in _imports(p))
    ]
    assert offenders == []


def test_the_core_is_pure() -> None:
    offenders = {
        str(p.relative_to(BRIDGE)): sorted(n for n in _imports(p) if n.split(".")[0] in IO_LIBRARIES)
        for p in _modules(BRIDGE / "core")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_serving_the_bridge_loads_no_emulator_code() -> None:
    probe = (
        "import sys, bridge.cli, bridge.app; bridge.cli._parser().parse_args(['serve', '--config', 'x']);"
        "print(sorted(m for m in sys.modules if m.startswith('bridge.sandbox')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
