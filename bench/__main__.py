"""``python -m bench [--quick] [--json FILE]``: every benchmark of issue 5 against the sandbox.

Prints a table (each figure beside its baseline from the same run) and optionally writes the figures
as JSON. ``--quick`` runs the same code paths with smaller counts (a smoke run, under a minute or so).
The method is in docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.attack import run_attack
from bench.backlog import run_backlog
from bench.common import Figure, ratio, table
from bench.cost import run_cost
from bench.initial import run_initial
from bench.live import Direction, Keys, run_direction, run_scaling
from bench.procs import DEFAULT_EVENT_LOOP, DEFAULT_GC_GEN0_THRESHOLD
from bench.profile import run_profile
from bench.replicas import run_replicas
from bench.restart import run_restart
from bench.syncpath import run_sync
from bench.workorder import run_workorders

SECTIONS = (
    "sync",
    "live",
    "cost",
    "backlog",
    "scaling",
    "restart",
    "attack",
    "initial",
    "pg",
    "profile",
    "workorder",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts, same code paths (smoke run)")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    parser.add_argument(
        "--workdir", type=Path, help="keep logs, configs and profiles here (default: temporary)"
    )
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="run only these sections (repeatable)"
    )
    parser.add_argument(
        "--sync",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a [sync] setting for every bridge run, value in JSON (e.g. coalesce_writes=true)",
    )
    parser.add_argument(
        "--event-loop",
        choices=("uvloop", "asyncio"),
        default=DEFAULT_EVENT_LOOP,
        help=f"event loop of every bridge and relay run (default: the bridge's, {DEFAULT_EVENT_LOOP})",
    )
    parser.add_argument(
        "--gc-gen0-threshold",
        type=int,
        default=DEFAULT_GC_GEN0_THRESHOLD,
        metavar="N",
        help="gc_gen0_threshold of every bridge and relay run (default: the bridge's,"
        f" {DEFAULT_GC_GEN0_THRESHOLD}; Python's own is 700)",
    )
    parser.add_argument(
        "--apply-processes",
        type=int,
        default=1,
        metavar="N",
        help="sync.apply_processes of every bridge run (default 1: asynchronous changes are applied on"
        " the second core; 0 = the bridge's default, one process)",
    )
    parser.add_argument("--lanes", type=int, default=32, help="concurrent senders for live runs (default 32)")
    return parser


def _sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "sync": {"creates": 20, "updates": 60, "latency_changes": 15},
            "live": {"records": 200, "updates": 1000},
            "cost": {"records": 200, "updates": 2000},
            "backlog": [10_000, 30_000],
            "catchup_window_s": 5.0,
            "scaling": {1: 60, 10: 200, 100: 400, 1000: 1000},
            "restart": {"records": 20, "kills": 3},
            "pg": {"records": 100, "updates": 1000, "latency_changes": 100},
            "profile": None,
            "attack": {"senders": 8, "seconds": 3.0, "expanded_mb": 1024},
            "workorder": {"docs": 20, "lanes": 4},
            "initial": [10_000, 20_000],
        }
    return {
        "sync": {"creates": 100, "updates": 400, "latency_changes": 60},
        "live": {"records": 1000, "updates": 10_000},
        "cost": {"records": 1000, "updates": 10_000},
        "backlog": [10_000, 100_000, 1_000_000],
        "catchup_window_s": 60.0,
        "scaling": {1: 300, 10: 1000, 100: 3000, 10_000: 10_000},
        "profile": {"records": 500, "updates": 5000},
        "pg": {"records": 1000, "updates": 10_000, "latency_changes": 400},
        "attack": {"senders": 8, "seconds": 15.0, "expanded_mb": 1024},
        "workorder": {"docs": 200, "lanes": 8},
        "initial": [20_000, 100_000],
    }


def _sync_settings(pairs: list[str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--sync wants KEY=VALUE, not {pair!r}")
        try:
            settings[key.strip()] = json.loads(value)
        except ValueError:
            settings[key.strip()] = value  # a bare string
    return settings


def _machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


async def _run(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, Any], list[Figure]]:
    sizes = _sizes(args.quick)
    only = set(args.only or SECTIONS)
    if args.quick and not args.only:
        only.discard("profile")
    state_dir = workdir / "sandbox-state"
    keys = Keys(
        cds=secrets.token_urlsafe(18),
        scm=secrets.token_urlsafe(18),
        bridge_sync={"apply_processes": args.apply_processes, **_sync_settings(args.sync)},
        event_loop=args.event_loop,
        gc_gen0_threshold=args.gc_gen0_threshold,
    )
    out: dict[str, Any] = {
        "quick": args.quick,
        "event_loop": args.event_loop,
        "gc_gen0_threshold": args.gc_gen0_threshold,
        "apply_processes": keys.bridge_sync["apply_processes"],
        "machine": _machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    figures: list[Figure] = []

    if "sync" in only:
        print("sync overhead ...", flush=True)
        s = await run_sync(state_dir, workdir, keys=keys, **sizes["sync"])
        out.update(
            sync_added_ms_p50=s.added_p50,
            sync_added_ms_p99=s.added_p99,
            sync_overhead_ratio_p50=s.overhead_ratio_p50,
            sync_changes=s.changes,
            sync_webhook_ms_p50=s.webhook_p50,
            sync_scm_write_ms_p50=s.write_p50,
            sync_scm_read_ms_p50=s.read_p50,
            sync_scm_calls_per_change=s.scm_calls_per_change,
            sync_latency_changes=s.latency_changes,
            sync_webhook_ms_p50_at_50ms=s.latency_webhook_p50,
            sync_direct_scm_write_ms_p50_at_50ms=s.latency_direct_p50,
        )
        figures += [
            Figure(
                "sync: added by the bridge, p50",
                s.added_p50,
                "ms",
                f"F&O write p50 {s.write_p50:.2f} ms",
                "<= 2 ms",
            ),
            Figure(
                "sync: added by the bridge, p99",
                s.added_p99,
                "ms",
                f"webhook p50 {s.webhook_p50:.2f} ms",
                "<= 10 ms",
            ),
            Figure(
                "sync @50 ms F&O: webhook / direct write, p50",
                s.overhead_ratio_p50,
                "x",
                f"{s.latency_webhook_p50:.1f} / {s.latency_direct_p50:.1f} ms",
                "<= 1.05",
            ),
        ]

    if "live" in only:
        directions: list[Direction] = []
        for source in ("scm", "cds"):
            print(f"live throughput, {source} -> other side ...", flush=True)
            directions.append(
                await run_direction(state_dir, workdir, source, lanes=args.lanes, keys=keys, **sizes["live"])
            )
        per = {}
        for d in directions:
            key = "scm_to_cds" if d.name.startswith("F&O") else "cds_to_scm"
            per[key] = {
                "changes_per_s": d.bridge.updates_per_s,
                "creates_per_s": d.bridge.creates_per_s,
                "raw_changes_per_s": d.raw.updates_per_s,
                "raw_creates_per_s": d.raw.creates_per_s,
                "relay_changes_per_s": d.relay.updates_per_s,
                "relay_creates_per_s": d.relay.creates_per_s,
                "ratio_to_raw": ratio(d.bridge.updates_per_s, d.raw.updates_per_s),
                "ratio_to_relay": ratio(d.bridge.updates_per_s, d.relay.updates_per_s),
                "relay_ratio_to_raw": ratio(d.relay.updates_per_s, d.raw.updates_per_s),
                "cpu_us_per_change": d.bridge.cpu_us_per_change,
                "relay_cpu_us_per_change": d.relay.cpu_us_per_change,
                "mismatched_records": d.bridge.mismatched,
            }
            figures += [
                Figure(
                    f"live {d.name}: updates/s",
                    d.bridge.updates_per_s,
                    "/s",
                    f"raw {d.raw.updates_per_s:,.0f}/s, relay {d.relay.updates_per_s:,.0f}/s",
                    ">= 1,000/s",
                ),
                Figure(
                    f"live {d.name}: creates/s",
                    d.bridge.creates_per_s,
                    "/s",
                    f"raw {d.raw.creates_per_s:,.0f}/s, relay {d.relay.creates_per_s:,.0f}/s",
                ),
                Figure(
                    f"live {d.name}: ratio to raw",
                    per[key]["ratio_to_raw"],
                    "x",
                    f"relay to raw {per[key]['relay_ratio_to_raw']:.2f}",
                    ">= 0.5",
                ),
                Figure(f"live {d.name}: ratio to relay", per[key]["ratio_to_relay"], "x", "", ">= 0.7"),
                Figure(
                    f"live {d.name}: CPU per change",
                    d.bridge.cpu_us_per_change,
                    "us",
                    f"relay {d.relay.cpu_us_per_change:,.0f} us",
                ),
            ]
        # The headline keys take the slower direction.
        out.update(
            live_changes_per_s=min(p["changes_per_s"] for p in per.values()),
            live_ratio_to_raw=min(p["ratio_to_raw"] for p in per.values()),
            live_ratio_to_relay=min(p["ratio_to_relay"] for p in per.values()),
            live=per,
            live_records=sizes["live"]["records"],
            live_updates=sizes["live"]["updates"],
            live_lanes=args.lanes,
        )

    if "cost" in only:
        print("cost per change (intake, then apply) ...", flush=True)
        c = await run_cost(state_dir, workdir, lanes=args.lanes, keys=keys, **sizes["cost"])
        out.update(
            cost_intake_us_per_change=c.intake_us_per_change,
            cost_apply_us_per_change=c.apply_us_per_change,
            cost_intake_per_s=c.intake_per_s,
            cost_apply_per_s=c.apply_per_s,
            cost_changes=c.changes,
        )
        figures += [
            Figure(
                "cost: bridge CPU per change, intake",
                c.intake_us_per_change,
                "us",
                f"map paused: {c.intake_per_s:,.0f} changes/s queued",
            ),
            Figure(
                "cost: bridge CPU per change, apply",
                c.apply_us_per_change,
                "us",
                f"backlog of {c.changes:,}: {c.apply_per_s:,.0f} changes/s applied",
            ),
        ]

    if "backlog" in only:
        print("backlog ...", flush=True)
        b = await run_backlog(
            state_dir, workdir, sizes["backlog"], keys=keys, catchup_window_s=sizes["catchup_window_s"]
        )
        out.update(
            backlog_peak_rss_mb=b.peak_rss_mb,
            catchup_changes_per_s=b.catchup_per_s,
            backlog_idle_rss_mb=b.idle_rss_mb,
            backlog_rss_mb={str(k): v for k, v in b.rss_at.items()},
            backlog_depth={str(k): v for k, v in b.depth_at.items()},
            backlog_feed_changes_per_s=b.feed_per_s,
            catchup_applied=b.catchup_applied,
            catchup_seconds=b.catchup_seconds,
            catchup_rss_max_mb=b.catchup_rss_max_mb,
        )
        shown = ", ".join(f"{k:,}: {v:.0f}" for k, v in b.rss_at.items())
        figures += [
            Figure(
                "backlog: peak RSS of the bridge (one process)",
                b.peak_rss_mb,
                "MB",
                f"idle {b.idle_rss_mb:.0f} MB; {shown}",
                "< 200 MB, flat",
            ),
            Figure(
                "backlog: catch-up",
                b.catchup_per_s,
                "/s",
                f"{b.catchup_applied:,} applied in {b.catchup_seconds:.0f}s; fed at {b.feed_per_s:,.0f}/s",
            ),
        ]

    if "scaling" in only:
        print("scaling ...", flush=True)
        scale = await run_scaling(
            state_dir, workdir, list(sizes["scaling"]), sizes["scaling"], lanes=args.lanes, keys=keys
        )
        out["scaling_changes_per_s"] = {str(k): v for k, v in scale.items()}
        largest = scale[max(scale)]
        for size, rate in scale.items():
            figures.append(
                Figure(
                    f"scaling: {size:,} distinct records",
                    rate,
                    "/s",
                    f"{ratio(rate, largest):.2f} of {max(scale):,} records",
                )
            )

    if "restart" in only:
        print("restart after kill -9 ...", flush=True)
        r = await run_restart(state_dir, workdir, keys=keys, **sizes["restart"])
        out.update(
            restart_recovery_s=r.longest_s,
            restart_recovery_s_each=r.recovery_s,
            restart_held_leases=r.held,
            restart_settled_before_lease_end=sum(r.before_lease_end),
            restart_kills=len(r.recovery_s),
            restart_lease_s=r.lease_s,
        )
        figures.append(
            Figure(
                "restart: kill -9 to converged, longest",
                r.longest_s,
                "s",
                f"{len(r.recovery_s)} kills, {sum(r.held)} changes in hand, lease {r.lease_s:.0f} s",
                "<= 5 s",
            )
        )
    if "pg" in only:
        print("PostgreSQL queue and state, 1 and 3 replicas behind a front ...", flush=True)
        p = await run_replicas(state_dir, workdir, keys=keys, **sizes["pg"])
        if p.skipped:
            print(f"  pg: not measured: {p.skipped}", flush=True)
        out.update(
            pg_changes_per_s_1=p.rate(1),
            pg_changes_per_s_3=p.rate(3),
            pg_latency_ms_p50=p.latency(50),
            pg_latency_ms_p99=p.latency(99),
            pg_failover_s=p.failover_s,
            pg_ratio_3_to_1=None if p.skipped else ratio(p.rate(3) or 0.0, p.rate(1) or 0.0),
            pg_records=sizes["pg"]["records"],
            pg_updates=sizes["pg"]["updates"],
            pg_latency_changes=sizes["pg"]["latency_changes"],
            pg_lease_s=p.lease_s,
            pg_skipped=p.skipped,
        )
        if not p.skipped:
            figures += [
                Figure("pg: 1 replica, changes/s", p.rate(1) or 0.0, "/s", "F&O -> Dataverse, updates"),
                Figure(
                    "pg: 3 replicas, changes/s",
                    p.rate(3) or 0.0,
                    "/s",
                    f"{out['pg_ratio_3_to_1']:.2f} of one replica's",
                    ">= 0.8 x 1 replica",
                ),
                Figure(
                    "pg: end-to-end latency via the front, p50 (3 replicas)",
                    p.latency(50) or 0.0,
                    "ms",
                    f"p99 {p.latency(99) or 0.0:.0f} ms",
                ),
                Figure(
                    "pg: failover, SIGKILL to converged",
                    p.failover_s or 0.0,
                    "s",
                    f"lease {p.lease_s:g} s: a dead replica's changes in hand wait it out",
                ),
            ]
    if "attack" in only:
        print("attack: /healthz under unauthenticated compression bombs ...", flush=True)
        a = await run_attack(state_dir, workdir, keys=keys, **sizes["attack"])
        out.update(
            attack_healthz_ms_max=a.healthz_ms_max,
            attack_healthz_ms_p50=a.healthz_ms_p50,
            attack_healthz_calls=a.healthz_calls,
            attack_idle_healthz_ms_max=a.idle_healthz_ms_max,
            attack_bombs=a.bombs,
            attack_bomb_bytes=a.bomb_bytes,
            attack_bomb_expands_to=a.bomb_expands_to,
            attack_refused=a.refused,
            attack_statuses={str(k): v for k, v in a.statuses.items()},
            attack_bridge_cpu_s=a.bridge_cpu_s,
        )
        figures += [
            Figure(
                "attack: slowest /healthz under compression bombs",
                a.healthz_ms_max,
                "ms",
                f"idle {a.idle_healthz_ms_max:.1f} ms; {a.bombs} bombs of {a.bomb_bytes / 1e6:.1f} MB"
                f" -> {a.bomb_expands_to / 1e9:.1f} GB, {a.refused} refused 401",
                "<= 100 ms",
            ),
            Figure(
                "attack: bridge CPU over the attack",
                a.bridge_cpu_s,
                "s",
                f"{a.healthz_calls} /healthz calls, p50 {a.healthz_ms_p50:.1f} ms",
            ),
        ]

    if "workorder" in only:
        print("work orders with 10 lines, end to end ...", flush=True)
        w = await run_workorders(state_dir, workdir, keys=keys, **sizes["workorder"])
        out.update(
            workorder_docs_per_s=w.docs_per_s,
            workorder_ratio_to_raw=w.ratio_to_raw,
            workorder_raw_docs_per_s=w.raw_docs_per_s,
            workorder_docs=w.docs,
            workorder_lines_per_doc=w.lines_per_doc,
            workorder_missing_lines=w.missing_lines,
        )
        figures += [
            Figure(
                "work orders (10 lines) -> sales orders: docs/s",
                w.docs_per_s,
                "/s",
                f"raw F&O change sets {w.raw_docs_per_s:,.1f}/s; {w.docs} docs,"
                f" {w.missing_lines} lines missing",
            ),
            Figure("work orders: ratio to raw change sets", w.ratio_to_raw, "x", ""),
        ]

    if "initial" in only:
        print("initial sync ...", flush=True)
        i = await run_initial(state_dir, workdir, sizes["initial"])
        small, large = min(i.peak_rss_mb), max(i.peak_rss_mb)
        out.update(
            initial_records_per_min=i.records_per_min,
            initial_ratio_to_raw=i.ratio_to_raw,
            initial_peak_rss_mb=i.peak_rss_mb[large],
            initial_peak_rss_mb_at={str(k): v for k, v in i.peak_rss_mb.items()},
            initial_raw_records_per_min=i.raw_records_per_min,
            initial_records=i.records,
            initial_written=i.written,
        )
        figures += [
            Figure(
                f"initial sync: {i.records:,} records",
                i.records_per_min,
                "/min",
                f"plain script {i.raw_records_per_min:,.0f}/min",
                ">= 100,000/min",
            ),
            Figure("initial sync: ratio to the plain script", i.ratio_to_raw, "x", "", ">= 0.8"),
            Figure(
                "initial sync: peak RSS of the command",
                i.peak_rss_mb[large],
                "MB",
                f"{small:,} records: {i.peak_rss_mb[small]:.0f} MB",
                "flat",
            ),
        ]

    if "profile" in only and sizes["profile"] is not None:
        print("profile ...", flush=True)
        flat = await run_profile(state_dir, workdir, lanes=args.lanes, keys=keys, **sizes["profile"])
        out["profile_flat"] = str(flat)
        out["profile_tree"] = str(flat.with_name("profile-tree.txt"))
    return out, figures


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dualwrite-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        out, figures = asyncio.run(_run(args, workdir.resolve()))
    out["seconds"] = time.perf_counter() - started
    print()
    print(table(figures))
    print(
        f"\n{'quick' if args.quick else 'full'} run in {out['seconds']:.0f}s on {out['machine']['cpus']} CPUs"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_clean(out), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
