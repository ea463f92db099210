"""``dualwrite demo`` and ``dualwrite sandbox`` on a port someone else holds: one line naming the
port, exit 2, no Python traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "bridge.cli", "--log-level", "WARNING"]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 held by a listening socket for the test's duration."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def _assert_one_line_naming(done: subprocess.CompletedProcess[str], command: str, port: int) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"dualwrite {command}: cannot start: "), lines[0]
    assert str(port) in lines[0], lines[0]


FREE_EMULATORS = ["--authority-port", "0", "--cds-port", "0", "--scm-port", "0"]


def test_demo_on_a_busy_bridge_port(tmp_path: Path, busy_port: int) -> None:
    args = ["demo", "--port", str(busy_port), *FREE_EMULATORS, "--state-dir", str(tmp_path / "s")]
    _assert_one_line_naming(_run([*args, "--duration", "5"], tmp_path), "demo", busy_port)


def test_demo_on_a_busy_emulator_port(tmp_path: Path, busy_port: int) -> None:
    args = ["demo", "--port", "0", "--authority-port", "0", "--cds-port", str(busy_port)]
    args += ["--scm-port", "0", "--state-dir", str(tmp_path / "s"), "--duration", "5"]
    _assert_one_line_naming(_run(args, tmp_path), "demo", busy_port)


def test_sandbox_on_a_busy_port(tmp_path: Path, busy_port: int) -> None:
    args = ["sandbox", "--authority-port", "0", "--cds-port", "0", "--scm-port", str(busy_port)]
    args += ["--state-dir", str(tmp_path / "s"), "--duration", "5"]
    _assert_one_line_naming(_run(args, tmp_path), "sandbox", busy_port)
