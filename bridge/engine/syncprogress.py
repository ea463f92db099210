"""A sync run's figures as it goes: per map and side, records read, written, unchanged, failed; the
rate and the time left. The terminal (``bridge.synccli``), ``GET /api/sync/initial`` and the
dashboard show these same figures (``snapshot``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

FIGURES = ("read", "written", "unchanged", "failed", "skipped")


def empty_counts() -> dict[str, dict[str, int]]:
    return {side: dict.fromkeys(FIGURES, 0) for side in ("cds", "scm")}


@dataclass
class MapProgress:
    name: str
    counts: dict[str, dict[str, int]] = field(default_factory=empty_counts)
    expected: int | None = None  # records on the larger side, when the systems said how many
    state: str = "waiting"  # waiting | running | done | failed
    company: str | None = None
    pass_no: int = 1

    def add(self, side: str, figure: str, n: int = 1) -> None:
        self.counts[side][figure] += n

    @property
    def read(self) -> int:
        return max(self.counts["cds"]["read"], self.counts["scm"]["read"])


@dataclass
class RunProgress:
    run_id: int
    master: str
    dry_run: bool
    maps: dict[str, MapProgress]
    status: str = "running"  # running | done | failed
    message: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    planned: list[dict[str, Any]] = field(default_factory=list)  # a dry run's writes (up to a limit)
    planned_total: int = 0
    _t0: float = field(default_factory=time.monotonic)
    _t_end: float | None = None

    def total(self, figure: str) -> int:
        return sum(m.counts[s][figure] for m in self.maps.values() for s in ("cds", "scm"))

    @property
    def records_read(self) -> int:
        return sum(m.read for m in self.maps.values())

    @property
    def elapsed_s(self) -> float:
        return (self._t_end or time.monotonic()) - self._t0

    @property
    def rate_per_min(self) -> float:
        """Records read (the larger side of each map) per minute."""
        elapsed = self.elapsed_s
        return 0.0 if elapsed <= 0 else self.records_read * 60.0 / elapsed

    @property
    def expected(self) -> int | None:
        known = [m.expected for m in self.maps.values()]
        return None if any(e is None for e in known) else sum(e or 0 for e in known)

    @property
    def eta_s(self) -> float | None:
        expected, rate = self.expected, self.rate_per_min
        if self.status != "running":
            return 0.0
        if expected is None or rate <= 0:
            return None
        return max(0.0, (expected - self.records_read) * 60.0 / rate)

    def finish(self, status: str, message: str | None) -> None:
        self.status, self.message = status, message
        self.finished_at = datetime.now(UTC)
        self._t_end = time.monotonic()

    def snapshot(self) -> dict[str, Any]:
        """The run as JSON: what ``--json`` prints and ``GET /api/sync/initial`` answers."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "message": self.message,
            "master": self.master,
            "dry_run": self.dry_run,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "elapsed_s": round(self.elapsed_s, 3),
            "records_read": self.records_read,
            "written": self.total("written"),
            "failed": self.total("failed"),
            "rate_per_min": round(self.rate_per_min, 1),
            "expected": self.expected,
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
            "maps": {
                name: {
                    "state": m.state,
                    "company": m.company,
                    "pass": m.pass_no,
                    "expected": m.expected,
                    **{side: dict(m.counts[side]) for side in ("cds", "scm")},
                }
                for name, m in self.maps.items()
            },
            "planned": list(self.planned),
            "planned_total": self.planned_total,
        }
