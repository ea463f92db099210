"""``dualwrite demo --replicas N --database-url postgresql://…``: the emulators, N ``dualwrite serve``
processes sharing one queue and one state store in PostgreSQL, and a round-robin front
(``bridge.front``) at the usual bridge address, which both systems' webhooks are registered against.

The replicas' tables live in a schema of the demo's own (``--schema``, default ``dualwrite_demo``),
dropped and created again at start (the emulators start empty, so the bridge's state does too);
nothing else in that database is touched. Each replica has its own data directory, so its own lease
owner id. ``--info-file`` lists them as ``replicas: [{"url", "pid"}]``: kill one (``kill -9 PID``)
and watch the others carry on; what it held is handed on when its leases run out (``lease_s``,
10 s in this demo).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bridge.app import run_until_stopped
from bridge.core.errors import ConfigError
from bridge.core.mapping import load_mappings
from bridge.demo import (
    _print_banner,
    _start_or_stop,
    default_mappings_dir,
    fresh_bridge_state,
    point_at_bridge,
    seed_demo,
)
from bridge.front import RoundRobinFront
from bridge.systems.auth import TokenProvider
from bridge.systems.dataverse import DataverseClient

DEMO_SCHEMA = "dualwrite_demo"
DEMO_LEASE_S = 10  # a killed replica's changes in hand go on after this (the default is 60 s)
START_TIMEOUT_S = 60.0


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def reset_schema(database_url: str, schema: str) -> None:
    """Drop the demo's schema and create it empty (``bridge.storage.postgres.reset_schema``)."""
    try:
        from bridge.storage import postgres
    except ImportError as exc:  # pragma: no cover - the postgres extra is part of dev
        raise ConfigError(
            "the replica demo needs the postgres extra: pip install 'dualwrite[postgres]'",
            field="database_url",
        ) from exc
    await postgres.reset_schema(database_url, schema)


@dataclass
class Replica:
    """One ``dualwrite serve`` process of the demo."""

    index: int
    url: str
    config: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def replica_config(info: Any, *, host: str, port: int, data_dir: Path, schema: str) -> str:
    """A replica's settings file: no secrets (those are in its environment)."""
    return f"""mappings_dir = {json.dumps(str(default_mappings_dir()))}
[cds]
url = "{info.cds_url}"
scope = "{info.cds_scope}"
[scm]
url = "{info.scm_url}"
scope = "{info.scm_scope}"
[auth]
authority = "{info.authority}"
client_id = "{info.client_id}"
ca_file = {json.dumps(str(info.ca_file))}
[listen]
host = "{host}"
port = {port}
[storage]
data_dir = {json.dumps(str(data_dir))}
[queue]
backend = "postgres"
[state]
backend = "postgres"
[database]
schema = "{schema}"
[sync]
lease_s = {DEMO_LEASE_S}
"""


class ReplicaSet:
    """N replicas' processes: written, started, stopped (SIGTERM: each hands its leases back)."""

    def __init__(self, root: Path, count: int, *, host: str, env: dict[str, str]) -> None:
        self.root, self.count, self.host, self.env = root, count, host, env
        self.replicas: list[Replica] = []

    def write(self, info: Any, schema: str) -> None:
        for n in range(self.count):
            home = self.root / f"replica-{n + 1}"
            home.mkdir(parents=True, exist_ok=True)
            port = _free_port(self.host)
            config = home / "bridge.toml"
            config.write_text(
                replica_config(info, host=self.host, port=port, data_dir=home / "data", schema=schema),
                encoding="utf-8",
            )
            self.replicas.append(Replica(n + 1, f"http://{self.host}:{port}", config, home / "bridge.log"))

    def launch(self, replica: Replica) -> None:
        with replica.log.open("ab") as out:
            replica.proc = subprocess.Popen(  # a plain handle: kill, pid
                [sys.executable, "-m", "bridge.cli", "serve", "--config", str(replica.config)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def start(self) -> None:
        for replica in self.replicas:
            self.launch(replica)
        await asyncio.gather(*(self._healthy(r) for r in self.replicas))

    async def _healthy(self, replica: Replica) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        async with aiohttp.ClientSession(trust_env=False) as http:
            while loop.time() < deadline:
                assert replica.proc is not None
                if replica.proc.poll() is not None:
                    tail = replica.log.read_text(encoding="utf-8", errors="replace")[-1500:]
                    raise ConfigError(f"replica {replica.index} exited at start:\n{tail}")
                try:
                    async with http.get(f"{replica.url}/healthz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise ConfigError(f"replica {replica.index} did not answer within {START_TIMEOUT_S:g}s")

    def stop(self, timeout: float = 20.0) -> None:
        running = [r.proc for r in self.replicas if r.proc is not None and r.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)  # graceful: finish, hand the leases back
        for proc in running:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def replica_env(info: Any, database_url: str, keys: dict[str, str]) -> dict[str, str]:
    """The replicas' environment: the secrets (never in their files) and nothing of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUALWRITE_")}
    env.update(
        DUALWRITE_CLIENT_SECRET=info.client_secret,
        DUALWRITE_CDS_WEBHOOK_KEY=keys["cds"],
        DUALWRITE_SCM_WEBHOOK_KEY=keys["scm"],
        DUALWRITE_ADMIN_TOKEN=keys["admin"],
        DUALWRITE_DATABASE_URL=database_url,
    )
    return env


async def register_front(sandbox: Any, front_url: str, keys: dict[str, str], mode: str) -> None:
    """Both systems' webhooks against the front, registered as ``dualwrite register`` does."""
    info = sandbox.info
    tokens = TokenProvider(
        info.authority, info.client_id, info.client_secret, info.cds_scope, ca_file=str(info.ca_file)
    )
    async with DataverseClient(info.cds_url, tokens, ca_file=str(info.ca_file)) as cds:
        await point_at_bridge(
            sandbox,
            cds,
            load_mappings(default_mappings_dir()),
            front_url,
            cds_key=keys["cds"],
            scm_key=keys["scm"],
            mode=mode,
        )


async def run_replica_demo(args: argparse.Namespace) -> int:
    from bridge.sandbox.runtime import Sandbox, SandboxConfig

    database_url: str = args.database_url or os.environ.get("DUALWRITE_DATABASE_URL", "")
    if not database_url:
        raise ConfigError("--replicas needs --database-url postgresql://… (or DUALWRITE_DATABASE_URL)")
    await reset_schema(database_url, args.schema)
    state_dir: Path = args.state_dir
    sandbox = Sandbox(
        SandboxConfig(
            host=args.host,
            authority_port=args.authority_port,
            cds_port=args.cds_port,
            scm_port=args.scm_port,
            state_dir=state_dir / "sandbox",
        )
    )
    await _start_or_stop(sandbox)
    keys = {name: secrets.token_urlsafe(24) for name in ("cds", "scm", "admin")}
    async with sandbox:
        info = sandbox.info
        replicas = ReplicaSet(
            fresh_bridge_state(state_dir / "replicas"),
            args.replicas,
            host=args.host,
            env=replica_env(info, database_url, keys),
        )
        replicas.write(info, args.schema)
        front = RoundRobinFront([r.url for r in replicas.replicas], host=args.host, port=args.port)
        try:
            await replicas.start()
            await front.start()
            await register_front(sandbox, front.url, keys, args.mode)
            made = 0 if args.no_seed else await seed_demo(sandbox)
            everything = {
                **info.model_dump(mode="json"),
                **front_keys(front.url, keys, args.mode),
                "replicas": [{"url": r.url, "pid": r.pid} for r in replicas.replicas],
                "database_schema": args.schema,
            }
            if args.info_file is not None:
                args.info_file.parent.mkdir(parents=True, exist_ok=True)
                args.info_file.write_text(json.dumps(everything, indent=2) + "\n", encoding="utf-8")
            _print_banner(everything, made)
            listed = "\n".join(f"  replica {r.index}        {r.url}   pid {r.pid}" for r in replicas.replicas)
            print(f"{listed}\n  (kill one: the front passes over it, the others carry on)", flush=True)
            await run_until_stopped(args.duration)
        finally:
            await front.stop()
            replicas.stop()
    return 0


def front_keys(front_url: str, keys: dict[str, str], mode: str) -> dict[str, Any]:
    """The info-file keys of the bridge, as the single-process demo writes them, at the front."""
    return {
        "bridge_url": front_url,
        "dashboard_url": f"{front_url}/",
        "cds_webhook_url": f"{front_url}/webhooks/cds?code={keys['cds']}",
        "cds_webhook_headers": {},
        "scm_webhook_url": f"{front_url}/webhooks/scm",
        "scm_webhook_headers": {"x-dualwrite-key": keys["scm"]},
        "admin_token": keys["admin"],
        "webhook_mode": mode,
    }
