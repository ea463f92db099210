"""The demo banner's shell commands, run as printed (bash and curl) against the bridge between both
emulators: the write in F&O lands, and the read in Dataverse shows the ship via the bridge made."""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Any

import pytest

from bridge.demo import try_it_commands
from tests.e2e.harness import Harness, eventually

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
]


async def _bash(script: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", script, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out
    return out.decode()


async def test_banner_commands_write_in_fno_and_read_in_dataverse(env: Harness) -> None:
    info = {**env.sandbox.info.model_dump(mode="json"), **env.keys}
    write, read = try_it_commands(info)

    made = json.loads(await _bash(write))
    assert made["ModeCode"] == "Rail", made

    async def shown() -> list[dict[str, Any]] | None:
        rows = json.loads(await _bash(read))["value"]
        return rows or None

    rows = await eventually(shown, what="the ship via read back as the banner shows")
    assert [(r["msdyn_name"], r["msdyn_description"]) for r in rows] == [("Rail", "Rail freight")]
