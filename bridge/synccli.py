"""``dualwrite sync initial`` and ``dualwrite sync errors``: the commands, and the run's progress on
the terminal.

``sync initial`` asks the running bridge (the one that owns the queue) through its operations API,
``POST /api/sync/initial``, and follows ``GET /api/sync/initial``; when no bridge answers at the
configured address it runs in this process, on the same state store (``bridge.syncrun``). Either way
the terminal shows the same figures the dashboard does: records read, written and failed per map,
the rate and the time left (rich's live progress, on stderr, so ``--json`` prints only the JSON).

Exit codes: 0 done and every record brought together; 1 done with records that failed (listed by
``dualwrite sync errors``); 2 trouble (a setting, the bridge's refusal, a run that failed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from bridge.core.errors import ConfigError, DualWriteError
from bridge.core.events import System
from bridge.engine.syncports import InitialRequest
from bridge.settings import Settings
from bridge.state.base import sync_store
from bridge.state.factory import create_state
from bridge.syncrun import run_settings, run_standalone


def add_parser(sub: Any) -> Any:
    """``sync initial`` and ``sync errors`` on the ``dualwrite`` parser's subcommands; returns the
    ``sync`` group's actions, for ``bridge.clisync`` to add ``record`` and ``check``."""
    sync = sub.add_parser("sync", help="initial sync, its errors, one record, drift check and repair")
    actions = sync.add_subparsers(dest="sync_command", required=True, metavar="ACTION")
    initial = actions.add_parser("initial", help="bring the records both systems hold together")
    which = initial.add_mutually_exclusive_group(required=True)
    which.add_argument("--map", action="append", dest="maps", metavar="NAME", help="a map (repeatable)")
    which.add_argument("--all", action="store_true", help="every map, in dependency order")
    initial.add_argument(
        "--master", choices=("cds", "scm"), required=True, help="the side that wins differences"
    )
    initial.add_argument(
        "--company", action="append", dest="companies", metavar="C", help="a company (repeatable)"
    )
    initial.add_argument("--dry-run", action="store_true", help="write nothing; report what would be written")
    initial.add_argument("--failed-only", action="store_true", help="only the records that failed last time")
    initial.add_argument("--json", action="store_true", help="print one JSON object with the figures")
    _common(initial)
    errors = actions.add_parser("errors", help="the records sync runs could not bring together")
    errors.add_argument("--map", default=None, metavar="NAME")
    errors.add_argument("--company", default=None)
    errors.add_argument("--limit", type=int, default=50)
    errors.add_argument("--all", action="store_true", help="resolved ones too")
    errors.add_argument("--json", action="store_true")
    _common(errors)
    return actions


def _common(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--config", type=Path, default=None, help="TOML settings file (docs/configuration.md)")
    which.add_argument(
        "--sandbox",
        type=Path,
        default=None,
        metavar="INFO_FILE",
        help="the emulators of 'dualwrite sandbox --info-file', instead of --config (bridge/infofile.py)",
    )
    parser.add_argument(
        "--bridge-url", default=None, help="the running bridge (default: http://listen.host:listen.port)"
    )


def main(args: argparse.Namespace) -> int:
    if args.sandbox is not None:  # a sandbox's info file instead of a TOML file (bridge/infofile.py)
        from bridge.infofile import sandbox_settings

        settings = sandbox_settings(args.sandbox).settings
    else:
        settings = run_settings(args.config)
    if args.sync_command == "initial":
        return asyncio.run(initial(args, settings))
    return asyncio.run(errors(args, settings))


# ---------------------------------------------------------------- the running bridge


@dataclass
class BridgeApi:
    url: str
    token: str

    @classmethod
    def of(cls, args: argparse.Namespace, settings: Settings) -> BridgeApi:
        url = args.bridge_url or f"http://{settings.listen.host}:{settings.listen.port}"
        return cls(url.rstrip("/"), settings.admin_token.get_secret_value())

    async def call(
        self, http: aiohttp.ClientSession, method: str, path: str, body: Any = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with http.request(method, self.url + path, json=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    async def running(self, http: aiohttp.ClientSession) -> bool:
        """Whether a bridge answers there (a refused connection: none runs)."""
        try:
            status, _ = await self.call(http, "GET", "/api/sync/initial")
        except (aiohttp.ClientConnectionError, TimeoutError):
            return False
        if status in (401, 403):
            raise ConfigError(
                "the bridge refused the admin token: set DUALWRITE_ADMIN_TOKEN", field="admin_token"
            )
        if status != 200:  # something answers there: never run beside it on the same state store
            raise DualWriteError(f"{self.url} answered {status} to GET /api/sync/initial (another version?)")
        return True


def _request(args: argparse.Namespace) -> InitialRequest:
    return InitialRequest(
        maps=() if args.all else tuple(args.maps),
        master=System(args.master),
        companies=tuple(c.upper() for c in args.companies or ()),
        dry_run=args.dry_run,
        failed_only=args.failed_only,
    )


async def initial(args: argparse.Namespace, settings: Settings, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    request = _request(args)
    view = ProgressView(enabled=not args.json)
    api = BridgeApi.of(args, settings)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        in_bridge = await api.running(http)
        if in_bridge:
            snapshot = await _through_bridge(api, http, request, view)
    if not in_bridge:
        try:
            with view:
                done = await run_standalone(settings, request, on_progress=lambda p: view.show(p.snapshot()))
            snapshot = done.snapshot()
        except KeyError as exc:
            raise ConfigError(f"unknown map: {exc.args[0]}", field="--map") from None
    view.show(snapshot)
    report(snapshot, as_json=args.json, out=out, where="bridge" if in_bridge else "this process")
    if snapshot["status"] != "done":
        return 2
    return 1 if snapshot["failed"] else 0


async def _through_bridge(
    api: BridgeApi, http: aiohttp.ClientSession, request: InitialRequest, view: ProgressView
) -> dict[str, Any]:
    body = {
        "maps": list(request.maps),
        "master": request.master.value,
        "companies": list(request.companies),
        "dry_run": request.dry_run,
        "failed_only": request.failed_only,
    }
    status, started = await api.call(http, "POST", "/api/sync/initial", body)
    if status != 202:
        raise DualWriteError(f"the bridge refused the run ({status}): {started.get('message', started)}")
    snapshot: dict[str, Any] = started
    with view:
        while snapshot["status"] == "running":
            await asyncio.sleep(0.5)
            status, body = await api.call(http, "GET", "/api/sync/initial")
            if status != 200 or not body.get("run"):
                raise DualWriteError(f"the bridge stopped answering ({status}): {body}")
            snapshot = body["run"]
            view.show(snapshot)
    return snapshot


def json_report(snapshot: dict[str, Any]) -> dict[str, Any]:
    """``--json``: one object, per map and side the counts read, written, unchanged and failed."""
    return {
        "run_id": snapshot["run_id"],
        "status": snapshot["status"],
        "message": snapshot["message"],
        "master": snapshot["master"],
        "dry_run": snapshot["dry_run"],
        "elapsed_s": snapshot["elapsed_s"],
        "records_read": snapshot["records_read"],
        "rate_per_min": snapshot["rate_per_min"],
        "maps": {
            name: {
                side: {k: m[side][k] for k in ("read", "written", "unchanged", "failed", "skipped")}
                for side in ("cds", "scm")
            }
            for name, m in snapshot["maps"].items()
        },
        **(
            {"planned": snapshot["planned"], "planned_total": snapshot["planned_total"]}
            if snapshot["dry_run"]
            else {}
        ),
    }


def report(snapshot: dict[str, Any], *, as_json: bool, out: TextIO, where: str) -> None:
    if as_json:
        out.write(json.dumps(json_report(snapshot), default=str) + "\n")
        return
    console = Console(file=out, highlight=False, soft_wrap=True)
    table = Table(title=f"initial sync run {snapshot['run_id']} in {where}: {snapshot['status']}")
    for column in ("map", "side", "read", "written", "unchanged", "failed", "skipped"):
        wide = max((len(name) for name in snapshot["maps"]), default=3) if column == "map" else None
        table.add_column(column, justify="left" if column in ("map", "side") else "right", min_width=wide)
    for name, m in snapshot["maps"].items():
        for side in ("cds", "scm"):
            f = m[side]
            label = "Dataverse" if side == "cds" else "F&O"
            table.add_row(
                name, label, *(str(f[k]) for k in ("read", "written", "unchanged", "failed", "skipped"))
            )
    console.print(table)
    verb = "would write" if snapshot["dry_run"] else "wrote"
    figures = (
        f"{snapshot['records_read']} records read, {verb} {snapshot['written']}, {snapshot['failed']} failed"
    )
    rate = f"{snapshot['rate_per_min']:.0f} records/min; master {snapshot['master']}"
    console.print(f"{figures}, {rate}. {snapshot['message'] or ''}")
    if snapshot["dry_run"]:
        for item in snapshot["planned"]:
            cols = ", ".join(item["fields"]) or "-"
            where = f"{item['map']} {item['company']}/{item['key']}"
            console.print(f"  would {item['operation']} {item['target']} {where}: {cols}")
        if snapshot["planned_total"] > len(snapshot["planned"]):
            console.print(
                f"  … and {snapshot['planned_total'] - len(snapshot['planned'])} more (--json lists the same)"
            )
    if snapshot["failed"]:
        console.print("The records that failed, with both systems' messages: dualwrite sync errors")


class ProgressView:
    """The live figures on stderr: one line per map (read of expected, written, failed, rate, ETA)."""

    def __init__(self, *, enabled: bool, console: Console | None = None) -> None:
        # On a terminal only (a log or a pipe gets the report at the end), unless given a console.
        self.enabled = enabled and (console is not None or sys.stderr.isatty())
        self.progress = Progress(
            TextColumn("{task.description:<24}"),
            BarColumn(),
            TextColumn("{task.completed:>8.0f} read"),
            TextColumn("{task.fields[written]:>8} written {task.fields[failed]:>5} failed"),
            TextColumn("{task.fields[rate]:>9} /min  ETA {task.fields[eta]}"),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            disable=not self.enabled,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> ProgressView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def show(self, snapshot: dict[str, Any]) -> None:
        eta = snapshot.get("eta_s")
        rate = f"{snapshot['rate_per_min']:.0f}"
        left = "-" if eta is None else f"{eta:.0f}s"
        for name, m in snapshot["maps"].items():
            read = max(m["cds"]["read"], m["scm"]["read"])
            written = m["cds"]["written"] + m["scm"]["written"]
            failed = m["cds"]["failed"] + m["scm"]["failed"]
            if name not in self.tasks:
                self.tasks[name] = self.progress.add_task(
                    name, total=m["expected"], written=0, failed=0, rate=rate, eta=left
                )
            self.progress.update(
                self.tasks[name],
                completed=read,
                total=m["expected"],
                written=written,
                failed=failed,
                rate=rate,
                eta=left,
            )


# ---------------------------------------------------------------- sync errors


async def errors(args: argparse.Namespace, settings: Settings, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    api = BridgeApi.of(args, settings)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        if await api.running(http):
            query = f"?limit={args.limit}&state={'all' if args.all else 'open'}"
            query += (f"&map={args.map}" if args.map else "") + (
                f"&company={args.company}" if args.company else ""
            )
            status, body = await api.call(http, "GET", "/api/sync/errors" + query)
            if status != 200:
                raise DualWriteError(f"the bridge refused ({status}): {body.get('message', body)}")
            listed: dict[str, Any] = body
        else:
            listed = await _errors_from_store(args, settings)
    if args.json:
        out.write(json.dumps(listed, default=str) + "\n")
        return 0
    console = Console(file=out, highlight=False, soft_wrap=True)
    for e in listed["items"]:
        record = f"{e['map']} {e['company']}/{e['key']}"
        answer = f"({e['status'] or '-'} {e['code'] or ''})"
        console.print(
            f"{e['occurred_at']}  run {e['run_id']}  {record}: {e['operation']} on {e['target']}"
            f" refused {answer}: {e['target_message']}"
        )
        if e["source_message"]:
            console.print(f"    source: {e['source_message']}")
        if e["fields"]:
            console.print(f"    fields: {', '.join(e['fields'])}")
    console.print(f"{len(listed['items'])} of {listed['total']} {'errors' if args.all else 'open errors'}")
    return 0


async def _errors_from_store(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from bridge.ops.api_sync import error_view

    state = create_state(settings)
    await state.open()
    try:
        store = sync_store(state)
        filters: dict[str, Any] = {"entity": args.map, "company": args.company, "open_only": not args.all}
        items = await store.sync_errors(**filters, limit=args.limit)
        total = await store.count_sync_errors(**filters)
    finally:
        await state.close()
    return {
        "items": [error_view(e).model_dump(mode="json") for e in items],
        "total": total,
        "offset": 0,
        "limit": args.limit,
    }
