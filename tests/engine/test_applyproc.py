"""An apply process on its own: it starts from the config frame, says why when it cannot, and never
outlives the serve process (it ends when its stdin closes)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bridge.app import Bridge
from bridge.core.errors import ConfigError
from bridge.core.mapping import load_mappings
from bridge.demo import default_mappings_dir
from bridge.engine import applywire
from bridge.engine.pool import config_frame
from bridge.settings import AuthSettings, Settings, StorageSettings, SyncSettings, SystemSettings


def _settings(tmp_path: Path, **sync: Any) -> Settings:
    # No I/O at start: the systems are only reached when a change arrives.
    return Settings(
        cds=SystemSettings(url="https://127.0.0.1:9/api/data/v9.2", scope="https://cds/.default"),
        scm=SystemSettings(url="https://127.0.0.1:9/data", scope="https://scm/.default"),
        auth=AuthSettings(authority="https://127.0.0.1:9/tenant", client_id="c"),
        storage=StorageSettings(data_dir=tmp_path / "data"),
        sync=SyncSettings(**sync),
        mappings_dir=default_mappings_dir(),
        client_secret=SecretStr("s3cret"),
        cds_webhook_key=SecretStr("cds-key-for-tests-0123"),
        scm_webhook_key=SecretStr("scm-key-for-tests-0123"),
        admin_token=SecretStr("admin-token-for-tests"),
    )


async def _spawn() -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge.engine.applyproc",
        "--event-loop=asyncio",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _frame(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    assert proc.stdout is not None
    return await asyncio.wait_for(applywire.read_frame(proc.stdout), 30)


async def test_it_starts_and_ends_when_its_stdin_closes(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    proc = await _spawn()
    assert proc.stdin is not None
    proc.stdin.write(applywire.frame(config_frame(settings, "s3cret", set(), 20)))
    ready = await _frame(proc)
    assert ready["t"] == "ready" and ready["pid"] == proc.pid
    proc.stdin.close()  # what a crash of the serve process looks like from here
    assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_it_says_why_it_cannot_start(tmp_path: Path) -> None:
    proc = await _spawn()
    assert proc.stdin is not None
    proc.stdin.write(applywire.frame({"t": "config", "settings": {"cds": "nonsense"}, "client_secret": "x"}))
    answer = await _frame(proc)
    assert answer["t"] == "fatal" and "ValidationError" in answer["message"]
    assert await asyncio.wait_for(proc.wait(), 30) == 1


def test_the_apply_process_gets_only_the_secret_it_needs(tmp_path: Path) -> None:
    config = config_frame(_settings(tmp_path), "s3cret", {"me"}, 20)
    assert "s3cret" not in str(config["settings"]) and config["client_secret"] == "s3cret"
    assert not {"admin_token", "cds_webhook_key", "scm_webhook_key", "client_secret"} & set(
        config["settings"]
    )
    assert config["own_ids"] == ["me"]


async def test_a_bridge_that_cannot_start_its_apply_process_says_so(tmp_path: Path) -> None:
    settings = _settings(tmp_path, apply_processes=1)
    settings.storage = StorageSettings(data_dir=tmp_path / "data")
    bridge = Bridge(settings)
    assert bridge.pool is not None
    bridge.pool.settings = settings.model_copy(update={"mappings_dir": tmp_path / "missing"})
    with pytest.raises(ConfigError, match="apply process did not start"):
        await bridge.pool.start()
    assert bridge.pool.running == 0


def test_apply_processes_read_the_mapping_files_themselves(tmp_path: Path) -> None:
    settings = _settings(tmp_path, apply_processes=1)
    with pytest.raises(ConfigError, match="mappings_dir"):
        Bridge(settings, mappings=load_mappings(default_mappings_dir()))
