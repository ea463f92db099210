"""The state store's SQLite schema, its migration of older files, and the row converters.

Timestamps are UTC ISO 8601 text with a fixed width (``2024-05-01T12:00:00.000000+00:00``), so they
sort as text and read as dates in the sqlite3 shell; naive datetimes are taken as UTC.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from bridge.core.ledger import LedgerEntry
from bridge.state.base import Activity, ActivityKind, Failure, FailureState, Resolution

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    record_key            TEXT PRIMARY KEY,
    entity                TEXT NOT NULL,
    company               TEXT NOT NULL,
    key                   TEXT NOT NULL,
    cds_id                TEXT,
    cds_image             TEXT NOT NULL,   -- JSON
    scm_image             TEXT NOT NULL,   -- JSON
    cds_written_at       TEXT,
    scm_written_at       TEXT,
    last_event_id         TEXT,
    last_source_timestamp TEXT,
    deleted               INTEGER NOT NULL DEFAULT 0,
    updated_at            TEXT NOT NULL,
    cds_etag              TEXT,
    scm_etag              TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ledger_cds_id ON ledger(cds_id) WHERE cds_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS failures (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    entity         TEXT NOT NULL,
    company        TEXT NOT NULL,
    key            TEXT NOT NULL,
    direction      TEXT NOT NULL,
    operation      TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    source_message TEXT,
    target_message TEXT,
    kind           TEXT NOT NULL,
    correlation_id TEXT,
    attempts       INTEGER NOT NULL,
    occurred_at    TEXT NOT NULL,
    compensated    INTEGER NOT NULL,
    details        TEXT NOT NULL,         -- JSON
    state          TEXT NOT NULL DEFAULT 'open',  -- FailureState (column added by migrate to older files)
    state_changed_at TEXT,
    state_by       TEXT,                  -- who acted ("admin token", "admin session ..."); NULL = the bridge
    resolution     TEXT                   -- Resolution
);
CREATE INDEX IF NOT EXISTS failures_time ON failures(occurred_at, id);
CREATE INDEX IF NOT EXISTS failures_entity_time ON failures(entity, occurred_at, id);
CREATE INDEX IF NOT EXISTS failures_correlation ON failures(correlation_id) WHERE correlation_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS map_states (
    entity     TEXT PRIMARY KEY,
    status     TEXT NOT NULL,
    reason     TEXT,
    changed_at TEXT NOT NULL
) WITHOUT ROWID;

-- Per map, what changed when and the last applied changes; the last N of each (entity, category).
CREATE TABLE IF NOT EXISTS activity (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    entity     TEXT NOT NULL,
    category   TEXT NOT NULL,             -- ActivityCategory: event | change
    kind       TEXT NOT NULL,             -- ActivityKind
    at         TEXT NOT NULL,
    message    TEXT NOT NULL,
    actor      TEXT,
    direction  TEXT,
    key        TEXT,
    latency_s  REAL,
    trace_id   TEXT
);
CREATE INDEX IF NOT EXISTS activity_map ON activity(entity, category, id);

CREATE TABLE IF NOT EXISTS journal (
    event_id   TEXT PRIMARY KEY,
    entry      TEXT NOT NULL,             -- JSON
    created_at TEXT NOT NULL
) WITHOUT ROWID;
"""

LEDGER_COLS = (
    "record_key, entity, company, key, cds_id, cds_image, scm_image, cds_written_at, scm_written_at, "
    "last_event_id, last_source_timestamp, deleted, updated_at, cds_etag, scm_etag"
)
FAILURE_COLS = (
    "entity, company, key, direction, operation, event_id, source_message, target_message, kind, "
    "correlation_id, attempts, occurred_at, compensated, details"
)
_FAILURE_STATE_COLS = "state, state_changed_at, state_by, resolution"
FAILURE_SELECT = f"SELECT id, {FAILURE_COLS}, {_FAILURE_STATE_COLS} FROM failures"
ACTIVITY_COLS = "entity, category, kind, at, message, actor, direction, key, latency_s, trace_id"

# Created after ``migrate``: a file from before failure states gets its columns first.
STATE_INDEXES = (
    "CREATE INDEX IF NOT EXISTS failures_record ON failures(entity, company, key) "
    "WHERE state IN ('open', 'retrying')",
    "CREATE INDEX IF NOT EXISTS failures_event ON failures(event_id)",
)
_ADDED_FAILURE_COLUMNS = {
    "state": "TEXT NOT NULL DEFAULT 'open'",
    "state_changed_at": "TEXT",
    "state_by": "TEXT",
    "resolution": "TEXT",
}


def migrate(conn: sqlite3.Connection) -> None:
    """Bring a file written by an earlier version up to ``SCHEMA`` (run once at open): its failures
    get the state columns, every one of them open."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(failures)")}
    for name, decl in _ADDED_FAILURE_COLUMNS.items():
        if name not in columns:
            conn.execute(f"ALTER TABLE failures ADD COLUMN {name} {decl}")
    for sql in STATE_INDEXES:
        conn.execute(sql)


def ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def ledger_row(entry: LedgerEntry) -> tuple[Any, ...]:
    """``entry`` as the ledger table's columns (``LEDGER_COLS``); ``updated_at`` defaults to now."""
    return (
        entry.record_key,
        entry.entity,
        entry.company,
        entry.key,
        entry.cds_id,
        json.dumps(entry.cds_image, separators=(",", ":")),
        json.dumps(entry.scm_image, separators=(",", ":")),
        ts(entry.cds_written_at),
        ts(entry.scm_written_at),
        entry.last_event_id,
        ts(entry.last_source_timestamp),
        int(entry.deleted),
        ts(entry.updated_at) or now(),
        entry.cds_etag,
        entry.scm_etag,
    )


def ledger_of(row: tuple[Any, ...]) -> LedgerEntry:
    (
        rk,
        entity,
        company,
        key,
        cds_id,
        cds_img,
        scm_img,
        cds_mod,
        scm_mod,
        last_id,
        last_ts,
        deleted,
        upd,
        ce,
        se,
    ) = row
    return LedgerEntry(
        record_key=rk,
        entity=entity,
        company=company,
        key=key,
        cds_id=cds_id,
        cds_image=json.loads(cds_img),
        scm_image=json.loads(scm_img),
        cds_written_at=dt(cds_mod),
        scm_written_at=dt(scm_mod),
        last_event_id=last_id,
        last_source_timestamp=dt(last_ts),
        deleted=bool(deleted),
        updated_at=dt(upd),
        cds_etag=ce,
        scm_etag=se,
    )


def failure_of(row: tuple[Any, ...]) -> Failure:
    (
        fid,
        entity,
        company,
        key,
        direction,
        operation,
        event_id,
        src,
        tgt,
        kind,
        corr,
        attempts,
        at,
        comp,
        det,
        state,
        state_at,
        state_by,
        resolution,
    ) = row
    return Failure(
        id=fid,
        entity=entity,
        company=company,
        key=key,
        direction=direction,
        operation=operation,
        event_id=event_id,
        source_message=src,
        target_message=tgt,
        kind=kind,
        correlation_id=corr,
        attempts=attempts,
        occurred_at=dt(at),
        compensated=bool(comp),
        details=json.loads(det),
        state=FailureState(state),
        state_changed_at=dt(state_at),
        state_by=state_by,
        resolution=None if resolution is None else Resolution(resolution),
    )


def activity_of(row: tuple[Any, ...]) -> Activity:
    aid, entity, _category, kind, at, message, actor, direction, key, latency, trace_id = row
    return Activity(
        id=aid,
        entity=entity,
        kind=ActivityKind(kind),
        at=dt(at),
        message=message,
        actor=actor,
        direction=direction,
        key=key,
        latency_s=latency,
        trace_id=trace_id,
    )
