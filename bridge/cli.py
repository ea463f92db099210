"""The ``dualwrite`` command.

    dualwrite serve --config FILE        the bridge against real or emulated systems
                                         (every command that talks to the systems also takes
                                         --sandbox INFO_FILE instead of --config)
    dualwrite demo                       emulators + bridge + dashboard on the embedded default
    dualwrite register --config FILE     the bridge's webhook registrations on Dataverse (idempotent)
    dualwrite mappings check [--dir D]   validate the mapping files without starting anything
    dualwrite mappings try --map M --key K   a dry run of one map on one real record
    dualwrite sync record|check …        resync one record; find (and repair) drift
    dualwrite sync initial|errors        bring both systems' records together; the records that failed
    dualwrite sandbox                    the emulators alone

``sandbox`` and ``demo`` import the emulators lazily: nothing else in the bridge imports them. Their
libraries are the ``sandbox`` extra (``pip install 'dualwrite[sandbox]'``); without it those two
commands say so in one line and exit 2, and everything else runs.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import importlib
import logging
import sys
from pathlib import Path

from bridge.clisync import add_sync_parser, run_sync
from bridge.core.errors import ConfigError, DualWriteError
from bridge.infofile import add_target_arguments, target_of
from bridge.tryout import add_try_parser, run_try

# The modules of pyproject.toml's ``sandbox`` extra: the emulators' libraries, not the bridge's.
SANDBOX_EXTRA_MODULES = ("odata_query", "trustme")
SANDBOX_HINT = "the emulators need the sandbox extra: pip install 'dualwrite[sandbox]'"
# What binding a listening socket fails with when the address is taken, absent or privileged.
LISTEN_ERRNOS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dualwrite", description=__doc__.split("\n\n")[0])
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the bridge")
    add_target_arguments(serve)  # --config FILE or --sandbox INFO_FILE

    demo = sub.add_parser("demo", help="emulators + bridge + dashboard, demo data seeded")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080, help="bridge port (default 8080)")
    demo.add_argument("--authority-port", type=int, default=8081)
    demo.add_argument("--cds-port", type=int, default=8082)
    demo.add_argument("--scm-port", type=int, default=8083)
    demo.add_argument("--state-dir", type=Path, default=Path(".dualwrite"), help="CA, queue and state files")
    demo.add_argument("--mode", choices=("sync", "async"), default="sync", help="Dataverse webhook step mode")
    demo.add_argument("--duration", type=float, default=None, help="stop after SECONDS (scripted runs)")
    demo.add_argument("--info-file", type=Path, default=None, help="write URLs and credentials as JSON")
    demo.add_argument("--no-seed", action="store_true", help="do not create demo records")
    demo.add_argument(
        "--replicas",
        type=int,
        default=None,
        metavar="N",
        help="N bridge processes on PostgreSQL behind a round-robin front at --port (needs --database-url)",
    )
    demo.add_argument(
        "--database-url",
        default=None,
        help="with --replicas: postgresql://… (default: DUALWRITE_DATABASE_URL)",
    )
    demo.add_argument(
        "--schema", default="dualwrite_demo", help="with --replicas: the schema it resets and uses"
    )

    reg = sub.add_parser("register", help="create the bridge's webhook registrations on Dataverse")
    add_target_arguments(reg)
    reg.add_argument("--webhook-url", default=None, help="default: listen.public_url + /webhooks/cds")
    reg.add_argument("--mode", choices=("sync", "async"), default="sync")

    maps = sub.add_parser("mappings", help="mapping files")
    maps_sub = maps.add_subparsers(dest="mappings_command", required=True, metavar="ACTION")
    check = maps_sub.add_parser("check", help="validate the mapping files")
    check.add_argument("--dir", type=Path, default=Path("mappings"))
    add_try_parser(maps_sub)  # mappings try (bridge/tryout.py)
    add_sync_parser(sub)  # sync initial|errors (bridge/synccli.py), record|check (bridge/clisync.py)

    # The emulators' own parser takes these arguments, imported only when this command runs: the
    # bridge never loads the sandbox otherwise.
    emulators = sub.add_parser(
        "sandbox", help="the emulators alone (dualwrite sandbox --help)", add_help=False, prefix_chars="\0"
    )
    emulators.add_argument("sandbox_args", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from bridge.telemetry import configure_logging

    # Log records carry the trace and span ids of the change they belong to.
    configure_logging(getattr(logging, str(args.log_level).upper(), logging.INFO))
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"dualwrite: configuration error: {exc}", file=sys.stderr)
        return 2
    except DualWriteError as exc:
        print(f"dualwrite: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if exc.errno not in LISTEN_ERRNOS:
            raise
        # A port in use (or not ours to take): one line naming it, not a traceback.
        print(f"dualwrite {args.command}: cannot start: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def missing_sandbox_module() -> str | None:
    """The first module of the ``sandbox`` extra that does not import, or None when all do."""
    for name in SANDBOX_EXTRA_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            return name
    return None


def _dispatch(args: argparse.Namespace) -> int:
    if args.command in ("demo", "sandbox") and (missing := missing_sandbox_module()):
        print(f"dualwrite: {SANDBOX_HINT} ({missing} is not installed)", file=sys.stderr)
        return 2
    if args.command == "mappings" and args.mappings_command == "try":
        return run_try(args)
    if args.command == "sync":
        return run_sync(args)
    if args.command == "mappings":
        from bridge.mapcheck import check

        ok, report = check(args.dir)
        print(report)
        return 0 if ok else 1
    if args.command == "serve":
        from bridge.app import serve
        from bridge.infofile import serve_sandbox
        from bridge.runtime import run

        # Read before the loop starts: the file chooses the loop.
        settings, chosen = target_of(args)
        return run(serve_sandbox(chosen) if chosen else serve(settings), settings.event_loop)
    if args.command == "register":
        from bridge.app import register
        from bridge.infofile import register_sandbox

        if args.sandbox is not None:
            _, chosen = target_of(args)
            assert chosen is not None
            return asyncio.run(register_sandbox(chosen, webhook_url=args.webhook_url, mode=args.mode))
        return asyncio.run(register(args.config, webhook_url=args.webhook_url, mode=args.mode))
    if args.command == "demo" and args.replicas is not None:
        from bridge.demoreplicas import run_replica_demo

        if not 1 <= args.replicas <= 16:
            raise ConfigError("--replicas takes 1 to 16")
        return asyncio.run(run_replica_demo(args))
    if args.command == "demo":
        from bridge.demo import run_demo

        return asyncio.run(run_demo(args))
    if args.command == "sandbox":
        from bridge.sandbox import cli as sandbox_cli

        parser = argparse.ArgumentParser(prog="dualwrite")
        sandbox_cli.add_parser(parser.add_subparsers(dest="command", required=True))
        return int(asyncio.run(sandbox_cli.run(parser.parse_args(["sandbox", *args.sandbox_args]))) or 0)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
