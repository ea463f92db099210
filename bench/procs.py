"""The bridge (``dualwrite serve``) and the naive relay as their own OS processes.

Both emulators live in the benchmark's process; what is measured runs beside them in its own
process, so the figures are two event loops' (two cores), not one loop serving both sides.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import MAPPINGS, ROOT, cpu_seconds, free_port, rss_mb
from bridge.settings import Settings

# The bridge's own defaults: every bridge and relay run gets them unless a flag says otherwise.
DEFAULT_EVENT_LOOP: str = Settings.model_fields["event_loop"].default
DEFAULT_GC_GEN0_THRESHOLD: int = Settings.model_fields["gc_gen0_threshold"].default


class ServedProcess:
    """A child process serving HTTP on ``127.0.0.1:port`` with ``/healthz``."""

    def __init__(self, workdir: Path, name: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    async def start(self, timeout: float = 30.0) -> None:
        with self.log.open("ab") as out:
            # Popen, not asyncio's: kill -9, RSS and restarts need the plain process handle.
            self.proc = subprocess.Popen(  # noqa: ASYNC220
                self.command(), env=self.environment(), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        async with aiohttp.ClientSession() as http:
            for _ in range(int(timeout / 0.05)):
                try:
                    async with http.get(f"{self.url}/healthz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.command()[3:5]} exited: {self.log.read_text()[-2000:]}")
                await asyncio.sleep(0.05)
        raise RuntimeError("did not start: " + self.log.read_text()[-2000:])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss(self) -> tuple[float, float]:
        return rss_mb(self.pid)

    def cpu(self) -> float:
        """CPU seconds the process has used so far."""
        return cpu_seconds(self.pid)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60.0) -> None:
        """SIGINT: a graceful stop (the profiler writes its report then)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class BridgeProcess(ServedProcess):
    """``python -m bridge.cli serve`` with a TOML config and its secrets in the environment."""

    def __init__(
        self,
        info: Any,
        workdir: Path,
        *,
        cds_key: str,
        scm_key: str,
        sync: dict[str, Any] | None = None,
        profile_to: Path | None = None,
        event_loop: str = DEFAULT_EVENT_LOOP,
        gc_gen0_threshold: int = DEFAULT_GC_GEN0_THRESHOLD,
        database: tuple[str, str] | None = None,
    ) -> None:
        """``database``: (URL, schema) to run the queue and the state on PostgreSQL tables there (the
        URL goes into the process's environment, as DUALWRITE_DATABASE_URL, never into the file)."""
        super().__init__(workdir, "bridge")
        self.info = info
        self.database_url = None if database is None else database[0]
        self.cds_key = cds_key
        self.scm_key = scm_key
        self.admin_token = secrets.token_urlsafe(24)
        self.profile_to = profile_to
        sync_lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in (sync or {}).items())
        self.config = workdir / "bridge.toml"
        self.config.write_text(
            f"""mappings_dir = "{MAPPINGS}"
event_loop = "{event_loop}"
gc_gen0_threshold = {gc_gen0_threshold}
[cds]
url = "{info.cds_url}"
scope = "{info.cds_scope}"
[scm]
url = "{info.scm_url}"
scope = "{info.scm_scope}"
[auth]
authority = "{info.authority}"
client_id = "{info.client_id}"
ca_file = "{info.ca_file}"
[listen]
port = {self.port}
max_body_bytes = 8388608
[storage]
data_dir = "{workdir / "data"}"
[sync]
{sync_lines}
""",
            encoding="utf-8",
        )
        if database is not None:
            with self.config.open("a", encoding="utf-8") as config:
                config.write(
                    f'[queue]\nbackend = "postgres"\n[state]\nbackend = "postgres"\n'
                    f'[database]\nschema = "{database[1]}"\n'
                )

    def command(self) -> list[str]:
        serve = ["-m", "bridge.cli", "--log-level", "WARNING", "serve", "--config", str(self.config)]
        if self.profile_to is None:
            return [sys.executable, *serve]
        profiler = ["-m", "pyinstrument", "-r", "session", "-o", str(self.profile_to)]
        return [sys.executable, *profiler, *serve]

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DUALWRITE_")}
        env.update(
            DUALWRITE_CLIENT_SECRET=self.info.client_secret,
            DUALWRITE_CDS_WEBHOOK_KEY=self.cds_key,
            DUALWRITE_SCM_WEBHOOK_KEY=self.scm_key,
            DUALWRITE_ADMIN_TOKEN=self.admin_token,
        )
        if self.database_url is not None:
            env["DUALWRITE_DATABASE_URL"] = self.database_url
        return env

    async def ops(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, f"{self.url}{path}", json=body, headers=headers) as resp,
        ):
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status} {await resp.text()}")
            return await resp.json()


class RelayProcess(ServedProcess):
    """``python -m bench.relay CONFIG``: receive, map, write; nothing else."""

    def __init__(
        self,
        info: Any,
        workdir: Path,
        *,
        cds_key: str,
        scm_key: str,
        event_loop: str = DEFAULT_EVENT_LOOP,
        gc_gen0_threshold: int = DEFAULT_GC_GEN0_THRESHOLD,
    ) -> None:
        super().__init__(workdir, "relay")
        self.config = workdir / "relay.json"
        self.config.write_text(
            json.dumps(
                {
                    "port": self.port,
                    "cds_url": info.cds_url,
                    "cds_scope": info.cds_scope,
                    "scm_url": info.scm_url,
                    "scm_scope": info.scm_scope,
                    "authority": info.authority,
                    "client_id": info.client_id,
                    "ca_file": info.ca_file,
                    "mappings_dir": str(MAPPINGS),
                    "cds_key": cds_key,
                    "scm_key": scm_key,
                    "event_loop": event_loop,
                    "gc_gen0_threshold": gc_gen0_threshold,
                }
            ),
            encoding="utf-8",
        )
        self.secret = info.client_secret

    def command(self) -> list[str]:
        return [sys.executable, "-m", "bench.relay", str(self.config)]

    def environment(self) -> dict[str, str]:
        return {**os.environ, "RELAY_CLIENT_SECRET": self.secret}


def stop_all(*procs: ServedProcess | None) -> None:
    for proc in procs:
        if proc is not None:
            proc.stop(signal.SIGTERM, timeout=10)
