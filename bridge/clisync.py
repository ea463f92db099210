"""``dualwrite sync …``: commands that bring the two systems together (``initial`` and ``errors`` are
``bridge.synccli``'s).

    dualwrite sync record --map M --key K [--company C] --from cds|scm   resync one record
    dualwrite sync check [--map M …] [--company C] [--repair --from cds|scm] [--json]

Each takes ``--config FILE`` or ``--sandbox INFO_FILE``. When the bridge those settings describe
runs, the command asks it through the operations API (the bridge owns the queue and state store);
otherwise it runs in its own process on the same queue and state (``bridge.oneshot``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from bridge.infofile import add_target_arguments, target_of

SIDES = ("cds", "scm")
# Exit statuses of ``sync check``, as diff's: no drift, drift found, trouble.
NO_DRIFT, DRIFT, TROUBLE = 0, 1, 2


def add_sync_parser(sub: Any) -> None:
    """The ``sync`` group: ``initial`` and ``errors`` (``bridge.synccli``), ``record`` and ``check``."""
    from bridge.synccli import add_parser

    actions = add_parser(sub)

    record = actions.add_parser("record", help="copy one record from one side to the other now")
    add_target_arguments(record)
    record.add_argument("--map", required=True, help="the map's name (mappings/<name>.yaml)")
    record.add_argument("--key", required=True, help="the record's natural key")
    record.add_argument("--company", default="USMF", help="the company (dataAreaId; default USMF)")
    record.add_argument("--from", dest="from_side", choices=SIDES, required=True, help="the side copied")

    check = actions.add_parser("check", help="compare both systems' mapped values and report drift")
    add_target_arguments(check)
    check.add_argument("--map", action="append", default=None, help="a map (repeat; default all)")
    check.add_argument("--company", default=None, help="one company (default: every company)")
    check.add_argument("--repair", action="store_true", help="copy each drifted record --from one side")
    check.add_argument("--from", dest="from_side", choices=SIDES, default=None, help="the side that wins")
    check.add_argument("--json", action="store_true", help="print one JSON object")


def run_sync(args: argparse.Namespace) -> int:
    if args.sync_command == "record":
        return asyncio.run(_record(args))
    if args.sync_command == "check":
        from bridge.core.errors import SyncError

        try:
            return asyncio.run(_check(args))
        except SyncError as exc:  # a system not reachable before the check began: trouble, as diff's 2
            print(f"dualwrite sync check: {exc.system or 'bridge'}: {exc.message}", file=sys.stderr)
            return TROUBLE
    from bridge.synccli import main

    return main(args)  # initial, errors


async def _record(args: argparse.Namespace) -> int:
    from bridge.core.events import System
    from bridge.oneshot import OneShot, running_bridge

    settings, _ = target_of(args)
    company = args.company.upper()
    bridge = await running_bridge(settings)
    if bridge is not None:
        body = await _post(
            bridge.url + "/api/resync",
            bridge.headers(),
            {"entity": args.map, "company": company, "key": args.key, "from": args.from_side},
        )
        outcome, message = str(body.get("outcome", "failed")), str(body.get("message", body))
    else:
        async with OneShot(settings) as one:
            if args.map not in one.mappings.maps:
                print(f"dualwrite sync record: no map {args.map!r}", file=sys.stderr)
                return 2
            result = await one.controller.resync(
                args.map, company, args.key, System(args.from_side), actor="dualwrite sync record"
            )
        outcome, message = result.outcome, result.message
    where = f"{args.map} {company}/{args.key}"
    if outcome == "unchanged" and "neither side" in message:
        print(f"not found: {where} exists on neither side", file=sys.stderr)
        return 1
    if outcome == "failed":
        print(f"{where}: failed: {message}", file=sys.stderr)
        return 1
    print(f"{where} from {args.from_side}: {outcome}{f' ({message})' if message else ''}")
    return 0


async def _post(
    url: str, headers: dict[str, str], body: dict[str, Any], *, timeout: float | None = 300.0
) -> dict[str, Any]:
    """One operations API call; its JSON answer (an error answer as outcome failed, its message)."""
    import aiohttp

    limit = aiohttp.ClientTimeout(total=timeout)
    async with (
        aiohttp.ClientSession(timeout=limit) as http,
        http.post(url, json=body, headers=headers) as resp,
    ):
        answer = await resp.json(content_type=None)
    if not isinstance(answer, dict):
        return {"outcome": "failed", "message": str(answer)}
    if "error" in answer:  # bridge.ops.models.ErrorView
        return {"outcome": "failed", "message": f"{answer['error']}: {answer.get('message', '')}"}
    return answer


async def _check(args: argparse.Namespace) -> int:
    from bridge.core.events import System
    from bridge.oneshot import OneShot, running_bridge

    if args.repair and args.from_side is None:
        print("dualwrite sync check: --repair needs --from cds|scm (the side that wins)", file=sys.stderr)
        return TROUBLE
    settings, _ = target_of(args)
    repair_from = System(args.from_side) if args.repair else None
    bridge = await running_bridge(settings)
    if bridge is not None:
        asked = {"maps": args.map, "company": args.company, "repair": args.repair, "from": args.from_side}
        answer = await _post(bridge.url + "/api/drift/check", bridge.headers(), asked, timeout=None)
        if answer.get("outcome") == "failed":
            print(f"dualwrite sync check: {answer['message']}", file=sys.stderr)
            return TROUBLE
        report = answer
    else:
        from bridge.drift import DriftChecker
        from bridge.ops.api_drift import report_json
        from bridge.state.factory import drift_state

        async with OneShot(settings) as one:
            checker = DriftChecker(
                mappings=one.mappings,
                systems=one.systems,
                sides=one.sides,
                controller=one.controller,
                drift=drift_state(one.state),
            )
            checks = await checker.check(
                args.map, company=args.company, repair_from=repair_from, actor="dualwrite sync check"
            )
        report = report_json(checks)
    print(json.dumps(report, indent=2) if args.json else render_check(report))
    return exit_of(report)


def exit_of(report: dict[str, Any]) -> int:
    """As diff: 0 no drift, 1 drift found, 2 trouble (a map not checked to the end, a repair failed)."""
    if report.get("errors") or report.get("repair_failed"):
        return TROUBLE
    return DRIFT if report.get("drifted") else NO_DRIFT


def render_check(report: dict[str, Any]) -> str:
    lines: list[str] = []
    for name, m in report["maps"].items():
        cds, scm = m["sides"]["cds"], m["sides"]["scm"]
        lines.append(
            f"{name}: read Dataverse {cds['read']}, F&O {scm['read']}; drifted {m['drifted']} (missing on"
            f" Dataverse {cds['missing']}, on F&O {scm['missing']}, different {m['different']});"
            f" unchanged {m['unchanged']}"
        )
        if m["error"]:
            lines.append(f"  not checked to the end: {m['error']}")
        for r in m["drift"]:
            where = f"{r['company']}/{r['key']}"
            if r["missing_on"]:
                what = f"missing on {'Dataverse' if r['missing_on'] == 'cds' else 'F&O'}"
            else:
                pairs = zip(r["fields"].get("cds", []), r["fields"].get("scm", []), strict=False)
                what = "differs: " + ", ".join(f"{c} / {s}" for c, s in pairs)
            repair = f"   [repair: {r['repair']}]" if r["repair"] else ""
            lines.append(f"  {where:<24} {what}{repair}")
        if m["repaired_from"]:
            lines.append(
                f"  repaired from {m['repaired_from']}: {m['repaired']}, failed {m['repair_failed']}"
            )
    if not report["maps"]:
        lines.append("no map checked")
    lines.append("no drift" if not report["drifted"] else f"{report['drifted']} records drifted")
    return "\n".join(lines)
