"""Fixtures for the commands' ``--sandbox`` runs: the sandbox in-process, its info file written as
``dualwrite sandbox --info-file`` writes it, a person acting on both systems, and the ``dualwrite``
command run in a thread (its own event loop) or a process, both over real HTTP(S)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.cli import main
from bridge.sandbox.cli import write_info
from tests.e2e.harness import Harness, client_context

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Ran:
    status: int
    out: str
    err: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_main(argv: list[str]) -> Ran:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return Ran(status, out.getvalue(), err.getvalue())


async def dualwrite(*argv: str) -> Ran:
    """``dualwrite ARGV`` in a thread: its own event loop, talking to the sandbox over HTTPS."""
    return await asyncio.to_thread(_run_main, ["--log-level", "WARNING", *argv])


@pytest.fixture
def info_file(sandbox: Any, tmp_path: Path) -> Path:
    path = tmp_path / "info" / "sandbox.json"
    write_info(path, sandbox.info)
    return path


@pytest.fixture
def bridge_port(monkeypatch: pytest.MonkeyPatch) -> int:
    port = free_port()
    monkeypatch.setenv("DUALWRITE_LISTEN__PORT", str(port))
    return port


@pytest.fixture
async def person(sandbox: Any) -> AsyncIterator[Harness]:
    """The sandbox's person-like client on both systems (no bridge in this process)."""
    connector = aiohttp.TCPConnector(ssl=client_context(sandbox.info.ca_file))
    async with aiohttp.ClientSession(connector=connector) as http:
        harness = Harness(sandbox=sandbox, bridge=None, keys={}, http=http)  # type: ignore[arg-type]
        row = await harness.request("cds", "GET", "cdm_companies?$filter=cdm_companycode eq 'USMF'")
        harness.company_id = row.body["value"][0]["cdm_companyid"]
        yield harness


@dataclass
class Served:
    process: asyncio.subprocess.Process
    banner: str


@contextlib.asynccontextmanager
async def serving(info_file: Path, port: int) -> AsyncIterator[Served]:
    """``dualwrite serve --sandbox INFO_FILE`` in a process of its own, until the block ends."""
    env = {**os.environ, "DUALWRITE_LISTEN__PORT": str(port), "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge.cli",
        "--log-level",
        "WARNING",
        "serve",
        "--sandbox",
        str(info_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(30):
            while True:
                raw = await process.stdout.readline()
                if not raw:
                    raise AssertionError("serve --sandbox exited:\n" + "".join(lines))
                lines.append(raw.decode())
                if "admin_token" in lines[-1]:
                    break
        yield Served(process, "".join(lines))
    finally:
        if process.returncode is None:
            process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 15)
        if process.returncode is None:
            process.kill()
            await process.wait()
