"""``pip install dualwrite`` without extras runs the bridge; the emulators are the ``sandbox`` extra, and
asking for them without it gets one line saying how to install it (no traceback)."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bridge import cli
from bridge.core.errors import ConfigError
from bridge.settings import StorageSettings
from bridge.storage.pgconfig import POSTGRES_EXTRA_MODULES
from scripts import import_graph

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
PYTEST_PLUGIN = "bridge.sandbox.pytest_plugin"
# What a plain install lacks: the sandbox and postgres extras' modules and the dev-only libraries.
NOT_INSTALLED = (
    *cli.SANDBOX_EXTRA_MODULES,
    *POSTGRES_EXTRA_MODULES,
    "pytest",
    "_pytest",
    "pytest_asyncio",
    "pytest_timeout",
    "hypothesis",
    "playwright",
    "pyinstrument",
    "mypy",
    "opentelemetry.sdk",
    "opentelemetry.exporter",
)

# Run in a fresh interpreter where the names above do not import (a finder ahead of every other refuses
# them), as on a machine where they were never installed.
PROBE = r"""
import contextlib, importlib, importlib.abc, io, json, sys

BLOCKED = sys.argv[1].split(",")


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
from bridge import cli

report = {}
for command in (["serve", "--help"], ["sandbox"], ["sandbox", "--port", "0"], ["demo", "--no-seed"]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(command)
        except SystemExit as exc:
            code = exc.code
    report[" ".join(command)] = {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}
failed = {}
for name in sys.argv[2].split(","):
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = repr(exc)
report["import failures"] = failed
print(json.dumps(report))
"""


# The modules of the postgres extra's backends: imported by the factories only when chosen.
POSTGRES_MODULES = re.compile(r"^bridge\.(queue|state|storage)\.postgres(_\w+)?$")


def _bridge_modules() -> list[str]:
    return sorted(m for m in import_graph.modules() if not m.startswith("bridge.sandbox"))


def _plain_install_modules() -> list[str]:
    return [m for m in _bridge_modules() if not POSTGRES_MODULES.match(m)]


def _without_extras() -> dict[str, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(NOT_INSTALLED), ",".join(_plain_install_modules())],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, dict[str, object]] = json.loads(done.stdout)
    return report


def test_without_the_extras_serve_runs_and_the_emulators_say_how_to_get_them() -> None:
    report = _without_extras()
    serve = report["serve --help"]
    assert serve["code"] == 0 and "--config" in str(serve["stdout"])
    # Every module of the bridge outside the emulators imports: what `serve` loads is among them.
    assert report["import failures"] == {}
    for command in ("sandbox", "sandbox --port 0", "demo --no-seed"):
        answer = report[command]
        assert answer["code"] == 2, command
        assert answer["stderr"] == (
            "dualwrite: the emulators need the sandbox extra: pip install 'dualwrite[sandbox]'"
            " (odata_query is not installed)\n"
        ), command


def test_with_the_extra_nothing_is_missing() -> None:
    assert cli.missing_sandbox_module() is None


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_cli_names_the_modules_of_the_sandbox_extra() -> None:
    extra = {_requirement_name(r) for r in PROJECT["optional-dependencies"]["sandbox"]}
    assert extra == {m.replace("_", "-") for m in cli.SANDBOX_EXTRA_MODULES}


def _third_party(modules: list[str]) -> dict[str, set[str]]:
    """The distributions each third-party module imported by ``modules`` may come from."""
    distributions = importlib.metadata.packages_distributions()
    paths = import_graph.modules()
    found: dict[str, set[str]] = {}
    for module in modules:
        for name in import_graph.imported_names(paths[module], module):
            top = name.split(".")[0]
            if top != "bridge" and top not in sys.stdlib_module_names and top != "__future__":
                found[top] = {d.lower().replace("_", "-") for d in distributions.get(top, [top])}
    return found


def test_the_bridge_imports_only_its_own_dependencies_and_the_sandbox_only_its_extra() -> None:
    # cryptography comes with the product's PyJWT[crypto] (the emulated Entra ID signs with it).
    product = {_requirement_name(r) for r in PROJECT["dependencies"]} | {"cryptography"}
    otel = {_requirement_name(r) for r in PROJECT["optional-dependencies"]["otel"]}
    postgres = {_requirement_name(r) for r in PROJECT["optional-dependencies"]["postgres"]}
    sandbox = {_requirement_name(r) for r in PROJECT["optional-dependencies"]["sandbox"]}
    bridge = _third_party(_bridge_modules())
    # The pytest plugin is loaded by pytest only (tests/conftest.py), so pytest is there when it is.
    emulators = _third_party(
        [m for m in import_graph.modules() if m.startswith("bridge.sandbox") and m != PYTEST_PLUGIN]
    )
    # telemetry imports the otel extra lazily and says how to install it when it is missing.
    assert {m: d for m, d in bridge.items() if not d & (product | otel | postgres)} == {}
    # and only the postgres backends' modules import the postgres extra
    plain = _third_party(_plain_install_modules())
    assert {m: d for m, d in plain.items() if not d & (product | otel)} == {}
    assert {m: d for m, d in emulators.items() if not d & (product | sandbox)} == {}


def test_the_cli_names_the_modules_of_the_postgres_extra() -> None:
    extra = {_requirement_name(r) for r in PROJECT["optional-dependencies"]["postgres"]}
    assert extra == {"psycopg", "psycopg-pool"}
    assert {m.replace("_", "-") for m in POSTGRES_EXTRA_MODULES} == extra


@pytest.mark.parametrize("port", ["queue", "state"])
def test_the_postgres_backend_without_its_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, port: str
) -> None:
    from bridge.queue.factory import build_queue
    from bridge.state.factory import build_state
    from tests.pg_support import pg_settings

    for name in list(sys.modules):  # as if psycopg had never been installed
        if name.split(".")[0] in POSTGRES_EXTRA_MODULES or POSTGRES_MODULES.match(name):
            monkeypatch.delitem(sys.modules, name)
    for name in POSTGRES_EXTRA_MODULES:
        monkeypatch.setitem(sys.modules, name, None)  # type: ignore[arg-type]
    settings = pg_settings("unused")
    storage = StorageSettings(data_dir=tmp_path)
    with pytest.raises(ConfigError) as caught:
        if port == "queue":
            build_queue("postgres", storage, owner="x", settings=settings)
        else:
            build_state("postgres", storage, settings=settings)
    assert str(caught.value) == (
        f"{port}.backend: the postgres backend needs the postgres extra: "
        "pip install 'dualwrite[postgres]' (psycopg is not installed)"
    )
