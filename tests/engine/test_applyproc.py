"""An apply process on its own: it starts from the config frame, says why when it cannot, and never
outlives the serve process (it ends when its stdin closes)."""

from __future__ import annotations

import asyncio
import os
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
        "bridge.applyproc",
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


def _niceness(pid: int) -> list[int]:
    """The niceness of each thread of ``pid`` (a thread's own on Linux), from /proc."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        found.append(int(fields[16]))  # field 19 of stat(5), counted after the command name
    return found


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads thread priorities from /proc")
@pytest.mark.parametrize("nice", [0, 7])
async def test_apply_processes_run_below_the_serve_process_priority(tmp_path: Path, nice: int) -> None:
    # Webhooks and synchronous changes wait on the serve process; the apply processes yield to it.
    bridge = Bridge(_settings(tmp_path, apply_processes=1, apply_nice=nice))
    assert bridge.pool is not None
    await bridge.pool.start()
    try:
        helper = bridge.pool.helpers[0]
        assert helper is not None
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        # every thread, the ledger's database thread included (started after the priority was set)
        threads = _niceness(helper.proc.pid)
        assert len(threads) > 1 and set(threads) == {min(ours + nice, 19)}
        assert set(_niceness(os.getpid())) == {ours}  # the serve process keeps its own
    finally:
        await bridge.pool.stop()


def test_apply_nice_is_a_unix_nice_increment(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="apply_nice"):
        _settings(tmp_path, apply_nice=20)
    with pytest.raises(ValueError, match="apply_nice"):
        _settings(tmp_path, apply_nice=-1)
