"""Row writes of the Dataverse engine: validation, system columns (createdon, modifiedon, versionnumber,
_modifiedby_value), uniqueness and references, then the store. Runs inside an open transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bridge.sandbox.dataverse.errors import DUPLICATE, DvError, payload_error, violation_error
from bridge.sandbox.rules import TableRules
from bridge.sandbox.store import Store, StoreError, TableStore


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RowWriter:
    def __init__(self, store: Store, rules: Mapping[str, TableRules]) -> None:
        self.store = store
        self.rules = rules
        self.version = 1000  # like SQL rowversion: one counter for the whole organization

    def _next_version(self) -> int:
        self.version += 1
        return self.version

    def exists(self, entity_set: str, where: Mapping[str, Any]) -> bool:
        """The rules' resolver: looks inside the open write transaction."""
        return self.store.exists(self.store.table(entity_set), where)

    def insert(
        self,
        ts: TableStore,
        values: Mapping[str, Any],
        *,
        user_id: str | None,
        derived: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], int]:
        """``derived``: read-only columns the emulator maintains (fieldservice.py), set after validation."""
        rules = self.rules[ts.sql_name]
        entity = ts.table.logical_name
        norm, violations = rules.check_write(values, None)
        if violations:
            raise violation_error(entity, violations[0])
        pid = ts.table.primary_id or ""
        rid = norm.get(pid) or str(uuid.uuid4())
        if self.store.exists(ts, {pid: rid}):
            raise DvError(412, DUPLICATE, "Cannot insert duplicate key.")
        now, version = _now(), self._next_version()
        row = dict.fromkeys(ts.columns)
        row.update(norm)
        row.update(derived or {})
        row[pid] = rid
        self._stamp(ts, row, now, version, user_id, created=True)
        violations = rules.check_unique(row, self) + rules.check_references(row, norm, self)
        if violations:
            raise violation_error(entity, violations[0])
        try:
            self.store.insert(ts, row, version)
        except StoreError as exc:
            raise DvError(412, DUPLICATE, "A record with matching key values already exists.") from exc
        return row, version

    def update(
        self,
        ts: TableStore,
        existing: dict[str, Any],
        values: Mapping[str, Any],
        *,
        user_id: str,
        derived: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], int]:
        rules = self.rules[ts.sql_name]
        entity = ts.table.logical_name
        norm, violations = rules.check_write(values, existing)
        if violations:
            raise violation_error(entity, violations[0])
        pid = ts.table.primary_id or ""
        if pid in norm and norm.pop(pid) != existing[pid]:
            raise payload_error(entity, f"The primary key '{pid}' cannot be changed.")
        version = self._next_version()
        row = {**existing, **norm, **(derived or {})}
        self._stamp(ts, row, _now(), version, user_id, created=False)
        changes = {k: row[k] for k in ts.columns if k in norm or row[k] != existing[k]}
        violations = []
        if any(k in norm for k in rules.key):
            violations += rules.check_unique(row, self, own=existing)
        violations += rules.check_references(row, norm, self)
        if violations:
            raise violation_error(entity, violations[0])
        try:
            self.store.update(ts, {pid: existing[pid]}, changes, version)
        except StoreError as exc:
            raise DvError(412, DUPLICATE, "A record with matching key values already exists.") from exc
        return row, version

    def _stamp(
        self,
        ts: TableStore,
        row: dict[str, Any],
        now: str,
        version: int,
        user_id: str | None,
        *,
        created: bool,
    ) -> None:
        cols = ts.kinds
        if created and "createdon" in cols:
            row["createdon"] = now
        if "modifiedon" in cols:
            row["modifiedon"] = now
        if "versionnumber" in cols:
            row["versionnumber"] = version
        if "_modifiedby_value" in cols and (user_id or created):
            row["_modifiedby_value"] = user_id
        if created and "statecode" in cols and row.get("statecode") is None:
            row["statecode"] = 0
