"""``dualwrite sandbox``: start the token authority and both emulators until stopped.

``bridge/cli.py`` wires ``add_parser`` and ``run`` in; ``python -m bridge.sandbox.cli sandbox ...``
runs the same without the rest of the bridge.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from bridge.sandbox.runtime import Sandbox, SandboxConfig, SandboxInfo
from bridge.sandbox.tls import DEFAULT_STATE_DIR


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sandbox",
        help="run local emulators of Entra ID, Dataverse and Finance and Operations",
        description="Start the token authority and both emulated systems over HTTPS on loopback, print "
        "their URLs and demo credentials, and run until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--authority-port", type=int, default=8081, help="token authority port (0 = any)")
    parser.add_argument("--cds-port", type=int, default=8082, help="Dataverse port (0 = any)")
    parser.add_argument("--scm-port", type=int, default=8083, help="Finance and Operations port (0 = any)")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help=f"CA and credentials (default {DEFAULT_STATE_DIR})",
    )
    parser.add_argument("--info-file", type=Path, help="also write URLs and credentials to this JSON file")
    parser.add_argument(
        "--duration", type=float, help="stop after this many seconds (default: run until stopped)"
    )
    parser.set_defaults(handler=run)
    return parser


def describe(info: SandboxInfo) -> str:
    return "\n".join(
        [
            "dualwrite sandbox is running",
            f"  token authority  {info.authority}",
            f"  Dataverse        {info.cds_url}   (scope {info.cds_scope})",
            f"  F&O              {info.scm_url}   (scope {info.scm_scope})",
            f"  CA file          {info.ca_file}   (trust it; never turn verification off)",
            f"  bridge client    {info.client_id} / {info.client_secret}",
            f"  user client      {info.user_client_id} / {info.user_client_secret}",
            f"  admin            {info.cds_admin_url}  {info.scm_admin_url}",
            f"  admin key        {info.admin_header}: {info.admin_key}",
        ]
    )


def write_info(path: Path, info: SandboxInfo) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # Holds secrets: owner-only, and written whole so a watcher never reads half a file.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(info.model_dump(), fh, indent=2)
    tmp.replace(path)


async def run(args: argparse.Namespace) -> int:
    config = SandboxConfig(
        host=args.host,
        authority_port=args.authority_port,
        cds_port=args.cds_port,
        scm_port=args.scm_port,
        state_dir=args.state_dir,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    sandbox = Sandbox(config)
    try:
        await sandbox.start()
    except OSError as exc:  # typically a port in use: say so instead of a traceback
        await sandbox.stop()
        print(f"dualwrite sandbox: cannot start: {exc.strerror or exc}", file=sys.stderr)
        return 2
    async with sandbox:
        print(describe(sandbox.info), flush=True)
        if args.info_file:
            write_info(args.info_file, sandbox.info)
            print(f"  info file        {args.info_file}", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.duration)
        print("dualwrite sandbox stopping", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dualwrite")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_parser(subparsers)
    args = parser.parse_args(argv)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
