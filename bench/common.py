"""Shared pieces of the benchmarks: figures (percentiles, rates), process memory, the sandbox set-up."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.sandbox.runtime import SandboxConfig

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = ROOT / "mappings"
ENTITY = "ship_via"  # the benchmark entity: key + one mapped text field on each side
CDS_SET, CDS_KEY, CDS_FIELD = "msdyn_shipvias", "msdyn_name", "msdyn_description"
SCM_SET, SCM_KEY, SCM_FIELD = "DeliveryModesV2", "ModeCode", "ModeDescription"


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (the bridge and its apply processes), from /proc."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children", encoding="ascii") as fh:
                    todo.extend(int(child) for child in fh.read().split())
    return out


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MB of a process with its descendants, from /proc (VmRSS, VmHWM);
    the peak is the sum of each process's own peak (an upper bound of their peak together)."""
    now = peak = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError), open(f"/proc/{member}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    now += int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    peak += int(line.split()[1]) / 1024
    return now, peak


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by a process, its live descendants, and the descendants it
    has reaped (an apply process that was restarted), from /proc/<pid>/stat."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError), open(f"/proc/{member}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
            if member == pid:
                total += int(fields[13]) + int(fields[14])
    return total / os.sysconf("SC_CLK_TCK")


def sandbox_config(state_dir: Path, **knobs: Any) -> SandboxConfig:
    """Ephemeral ports; one state directory for every sandbox of a run, so the CA, the client
    secrets and the signing key stay the same and a bridge configured once trusts them all."""
    values: dict[str, Any] = {"webhook_timeout": 30.0, "dataevent_retry_interval": 0.2, **knobs}
    return SandboxConfig(authority_port=0, cds_port=0, scm_port=0, state_dir=state_dir, **values)


def client_ssl(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


async def wait_until(check: Callable[[], bool], timeout: float, every: float = 0.02) -> float:
    """Poll ``check`` until true; returns the ``time.perf_counter()`` at which it was seen true."""
    deadline = time.perf_counter() + timeout
    while True:
        if check():
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"condition not reached within {timeout:.0f}s")
        await asyncio.sleep(every)


@dataclass
class Figure:
    """One line of the printed table: a figure beside its baseline from the same run."""

    name: str
    value: float
    unit: str
    baseline: str = ""
    target: str = ""

    def row(self) -> tuple[str, str, str, str]:
        shown = f"{self.value:,.2f}" if abs(self.value) < 100 else f"{self.value:,.0f}"
        return (self.name, f"{shown} {self.unit}".strip(), self.baseline, self.target)


def table(figures: Sequence[Figure]) -> str:
    header = ("figure", "value", "baseline (same run)", "target")
    rows = [header, *(f.row() for f in figures)]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
