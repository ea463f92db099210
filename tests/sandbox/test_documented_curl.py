"""docs/sandbox.md's curl block, run as it stands (bash, curl, python3) against the emulators: it uses
the person-like client, defines every variable it uses, and creates a ship via as that person."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from bridge.sandbox.cli import write_info

DOC = Path(__file__).resolve().parents[2] / "docs" / "sandbox.md"
pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
]


def documented_block() -> str:
    found = re.search(r"<!-- documented-curl -->\n```sh\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert found, "docs/sandbox.md lost its documented-curl block"
    return found.group(1)


def json_documents(text: str) -> list[Any]:
    """The JSON documents curl printed one after the other."""
    decoder, out, pos = json.JSONDecoder(), [], 0
    while (pos := _skip_space(text, pos)) < len(text):
        doc, pos = decoder.raw_decode(text, pos)
        out.append(doc)
    return out


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


async def test_documented_curl_block_runs_as_the_person(sandbox: Any, tmp_path: Path) -> None:
    info = sandbox.info
    write_info(tmp_path / ".dualwrite" / "sandbox.json", info)
    # set -u: a variable the block uses but does not define fails the run.
    proc = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", documented_block(), cwd=tmp_path, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out
    who, made = json_documents(out.decode())
    person = uuid.uuid5(uuid.NAMESPACE_URL, "dualwrite-sandbox-user:" + info.user_client_id)
    assert who["UserId"] == str(person), who  # the person-like client, not the bridge's
    assert (made["msdyn_name"], made["msdyn_description"]) == ("Rail", "Rail freight"), made
