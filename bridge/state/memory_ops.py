"""The in-memory state double's alert rules and parked conflicts (as ``bridge.state.sqlite_ops``).

A mixin of ``bridge.state.memory.MemoryState``; its data lives in ``MemoryOpsData``, a part of the
store's ``MemoryStateData``, so a store opened again on the same data sees what the last one wrote.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge.state.base import ConflictStatus, ParkedConflict, StoredAlertRule


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


@dataclass
class MemoryOpsData:
    alert_rules: dict[int, StoredAlertRule] | None = None  # None: never seeded nor changed
    next_rule_id: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    conflicts: dict[int, ParkedConflict] = field(default_factory=dict)
    next_conflict_id: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class MemoryOpsTables:
    """Alert rules and parked conflicts in a ``MemoryOpsData``."""

    @property
    def ops_data(self) -> MemoryOpsData:
        raise NotImplementedError  # MemoryState gives its data's part

    # ---- alert rules ---------------------------------------------------------------------------

    async def alert_rules(self) -> list[StoredAlertRule] | None:
        rules = self.ops_data.alert_rules
        return None if rules is None else [rules[k] for k in sorted(rules)]

    async def seed_alert_rules(self, rules: list[StoredAlertRule]) -> bool:
        data = self.ops_data
        if data.alert_rules is not None:
            return False
        data.alert_rules = {}
        for rule in rules:
            rid = next(data.next_rule_id)
            data.alert_rules[rid] = dataclasses.replace(rule, id=rid)
        return True

    async def put_alert_rule(self, rule: StoredAlertRule) -> int | None:
        data = self.ops_data
        rules = data.alert_rules if data.alert_rules is not None else {}
        if rule.id is not None and rule.id not in rules:
            return None
        rid = rule.id if rule.id is not None else next(data.next_rule_id)
        rules[rid] = dataclasses.replace(rule, id=rid)
        data.alert_rules = rules
        return rid

    async def delete_alert_rule(self, rule_id: int) -> bool:
        rules = self.ops_data.alert_rules
        if rules is None or rule_id not in rules:
            return False
        del rules[rule_id]
        return True

    # ---- parked conflicts ----------------------------------------------------------------------

    async def park_conflict(self, conflict: ParkedConflict) -> int:
        data = self.ops_data
        existing = await self.open_conflict_of(conflict.record_key)
        cid = existing.id if existing is not None and existing.id is not None else next(data.next_conflict_id)
        data.conflicts[cid] = dataclasses.replace(
            conflict,
            id=cid,
            cds_values=_json(conflict.cds_values),
            scm_values=_json(conflict.scm_values),
            cds_modified_at=_utc(conflict.cds_modified_at),
            scm_modified_at=_utc(conflict.scm_modified_at),
            detected_at=_utc(conflict.detected_at) or datetime.now(UTC),
            status=ConflictStatus.OPEN,
            winner=None,
            resolved_by=None,
            resolved_at=None,
        )
        return cid

    async def conflicts(
        self, *, entity: str | None = None, status: ConflictStatus | None = None, limit: int = 100
    ) -> list[ParkedConflict]:
        chosen = [
            c
            for _, c in sorted(self.ops_data.conflicts.items(), reverse=True)
            if (entity is None or c.entity == entity) and (status is None or c.status is status)
        ]
        return chosen[: max(limit, 0)]

    async def get_conflict(self, conflict_id: int) -> ParkedConflict | None:
        return self.ops_data.conflicts.get(conflict_id)

    async def open_conflict_of(self, record_key: str) -> ParkedConflict | None:
        return next(
            (
                c
                for c in self.ops_data.conflicts.values()
                if c.record_key == record_key and c.status is ConflictStatus.OPEN
            ),
            None,
        )

    async def close_conflict(self, conflict_id: int, *, winner: str, by: str, at: datetime) -> bool:
        found = self.ops_data.conflicts.get(conflict_id)
        if found is None or found.status is not ConflictStatus.OPEN:
            return False
        self.ops_data.conflicts[conflict_id] = dataclasses.replace(
            found, status=ConflictStatus.RESOLVED, winner=winner, resolved_by=by, resolved_at=_utc(at)
        )
        return True
