"""A drift check as JSON text and back: how the SQLite store keeps it (one row per map), and how
the in-memory double copies it so a caller's later changes never reach the store."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bridge.state.driftport import DriftCheck, DriftedRecord


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def drift_json(check: DriftCheck) -> str:
    body: dict[str, Any] = {
        "entity": check.entity,
        "started_at": utc(check.started_at).isoformat(timespec="microseconds"),
        "finished_at": utc(check.finished_at).isoformat(timespec="microseconds"),
        "companies": list(check.companies),
        "read": dict(check.read),
        "missing": dict(check.missing),
        "different": check.different,
        "unchanged": check.unchanged,
        "drift": [
            {
                "company": r.company,
                "key": r.key,
                "missing_on": r.missing_on,
                "fields": {side: list(cols) for side, cols in r.fields.items()},
                "repair": r.repair,
            }
            for r in check.drift
        ],
        "repaired_from": check.repaired_from,
        "repaired": check.repaired,
        "repair_failed": check.repair_failed,
        "error": check.error,
    }
    return json.dumps(body, separators=(",", ":"), default=str)


def drift_of(text: str) -> DriftCheck:
    body = json.loads(text)
    return DriftCheck(
        entity=body["entity"],
        started_at=datetime.fromisoformat(body["started_at"]),
        finished_at=datetime.fromisoformat(body["finished_at"]),
        companies=tuple(body["companies"]),
        read={k: int(v) for k, v in body["read"].items()},
        missing={k: int(v) for k, v in body["missing"].items()},
        different=int(body["different"]),
        unchanged=int(body["unchanged"]),
        drift=tuple(
            DriftedRecord(
                company=r["company"],
                key=r["key"],
                missing_on=r["missing_on"],
                fields={side: list(cols) for side, cols in r["fields"].items()},
                repair=r["repair"],
            )
            for r in body["drift"]
        ),
        repaired_from=body["repaired_from"],
        repaired=int(body["repaired"]),
        repair_failed=int(body["repair_failed"]),
        error=body["error"],
    )
