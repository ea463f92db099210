"""The PostgreSQL state store's tables (versioned migrations) and row converters.

The tables of the SQLite store (bridge/state/sqlite_schema.py and sqlite_ops.py), shared by every
replica: times are ``timestamptz`` (read back as UTC datetimes), images, failure details, journal
entries and conflict versions JSON text (as written, so they read back exactly; ``::jsonb`` in psql
to query them).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bridge.core.ledger import LedgerEntry
from bridge.state.base import (
    Activity,
    ActivityKind,
    ConflictStatus,
    Failure,
    FailureState,
    ParkedConflict,
    Resolution,
    StoredAlertRule,
)

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE ledger (
        record_key            text PRIMARY KEY,
        entity                text NOT NULL,
        company               text NOT NULL,
        key                   text NOT NULL,
        cds_id                text,
        cds_image             text NOT NULL,   -- JSON
        scm_image             text NOT NULL,   -- JSON
        cds_written_at        timestamptz,
        scm_written_at        timestamptz,
        last_event_id         text,
        last_source_timestamp timestamptz,
        deleted               boolean NOT NULL DEFAULT false,
        updated_at            timestamptz NOT NULL,
        cds_etag              text,
        scm_etag              text
    );
    CREATE INDEX ledger_cds_id ON ledger (cds_id) WHERE cds_id IS NOT NULL;

    CREATE TABLE failures (
        id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        entity           text NOT NULL,
        company          text NOT NULL,
        key              text NOT NULL,
        direction        text NOT NULL,
        operation        text NOT NULL,
        event_id         text NOT NULL,
        source_message   text,
        target_message   text,
        kind             text NOT NULL,
        correlation_id   text,
        attempts         integer NOT NULL,
        occurred_at      timestamptz NOT NULL,
        compensated      boolean NOT NULL,
        details          text NOT NULL,        -- JSON
        state            text NOT NULL DEFAULT 'open',  -- FailureState
        state_changed_at timestamptz,
        state_by         text,                 -- who acted; NULL = the bridge
        resolution       text                  -- Resolution
    );
    CREATE INDEX failures_time ON failures (occurred_at, id);
    CREATE INDEX failures_entity_time ON failures (entity, occurred_at, id);
    CREATE INDEX failures_correlation ON failures (correlation_id) WHERE correlation_id IS NOT NULL;
    CREATE INDEX failures_record ON failures (entity, company, key) WHERE state IN ('open', 'retrying');
    CREATE INDEX failures_event ON failures (event_id);

    CREATE TABLE map_states (
        entity     text PRIMARY KEY,
        status     text NOT NULL,
        reason     text,
        changed_at timestamptz NOT NULL
    );

    CREATE TABLE activity (
        id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        entity    text NOT NULL,
        category  text NOT NULL,               -- ActivityCategory: event | change
        kind      text NOT NULL,               -- ActivityKind
        at        timestamptz NOT NULL,
        message   text NOT NULL,
        actor     text,
        direction text,
        key       text,
        latency_s double precision,
        trace_id  text
    );
    CREATE INDEX activity_map ON activity (entity, category, id);

    CREATE TABLE journal (
        event_id   text PRIMARY KEY,
        entry      text NOT NULL,              -- JSON
        created_at timestamptz NOT NULL
    );

    CREATE TABLE alert_rules (
        id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        entity   text NOT NULL,                -- a map name or '*'
        failures integer NOT NULL,
        minutes  integer NOT NULL,
        action   text NOT NULL,
        url      text
    );
    -- one row once the rule set was seeded from settings or changed through the API
    CREATE TABLE alert_rules_seeded (
        one       integer PRIMARY KEY CHECK (one = 1),
        seeded_at timestamptz NOT NULL
    );

    CREATE TABLE conflicts (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        record_key      text NOT NULL,
        entity          text NOT NULL,
        company         text NOT NULL,
        key             text NOT NULL,
        cds_values      text NOT NULL,         -- JSON
        scm_values      text NOT NULL,         -- JSON
        event_id        text NOT NULL,
        cds_modified_at timestamptz,
        scm_modified_at timestamptz,
        detected_at     timestamptz NOT NULL,
        status          text NOT NULL,
        winner          text,
        resolved_by     text,
        resolved_at     timestamptz
    );
    CREATE UNIQUE INDEX conflicts_open ON conflicts (record_key) WHERE status = 'open';
    """,
)

LEDGER_COLS = (
    "record_key, entity, company, key, cds_id, cds_image, scm_image, cds_written_at, scm_written_at, "
    "last_event_id, last_source_timestamp, deleted, updated_at, cds_etag, scm_etag"
)
# insert or replace a record's entry (the SQLite store's INSERT OR REPLACE)
LEDGER_UPSERT = (
    f"INSERT INTO ledger({LEDGER_COLS}) VALUES ({', '.join(['%s'] * 15)}) "
    "ON CONFLICT (record_key) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in LEDGER_COLS.split(", ")[1:])
)
FAILURE_COLS = (
    "entity, company, key, direction, operation, event_id, source_message, target_message, kind, "
    "correlation_id, attempts, occurred_at, compensated, details"
)
FAILURE_SELECT = f"SELECT id, {FAILURE_COLS}, state, state_changed_at, state_by, resolution FROM failures"
ACTIVITY_COLS = "entity, category, kind, at, message, actor, direction, key, latency_s, trace_id"
RULE_COLS = "id, entity, failures, minutes, action, url"
CONFLICT_COLS = (
    "id, entity, company, key, cds_values, scm_values, event_id, cds_modified_at, scm_modified_at, "
    "detected_at, status, winner, resolved_by, resolved_at"
)


def utc(value: datetime | None) -> datetime | None:
    """A datetime to store: naive ones are taken as UTC (as the SQLite store does)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


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
        utc(entry.cds_written_at),
        utc(entry.scm_written_at),
        entry.last_event_id,
        utc(entry.last_source_timestamp),
        entry.deleted,
        utc(entry.updated_at) or now(),
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
        cds_at,
        scm_at,
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
        cds_written_at=cds_at,
        scm_written_at=scm_at,
        last_event_id=last_id,
        last_source_timestamp=last_ts,
        deleted=bool(deleted),
        updated_at=upd,
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
        id=int(fid),
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
        occurred_at=at,
        compensated=bool(comp),
        details=json.loads(det),
        state=FailureState(state),
        state_changed_at=state_at,
        state_by=state_by,
        resolution=None if resolution is None else Resolution(resolution),
    )


def activity_of(row: tuple[Any, ...]) -> Activity:
    aid, entity, _category, kind, at, message, actor, direction, key, latency, trace_id = row
    return Activity(
        id=int(aid),
        entity=entity,
        kind=ActivityKind(kind),
        at=at,
        message=message,
        actor=actor,
        direction=direction,
        key=key,
        latency_s=latency,
        trace_id=trace_id,
    )


def rule_of(row: tuple[Any, ...]) -> StoredAlertRule:
    rid, entity, failures, minutes, action, url = row
    return StoredAlertRule(
        entity=entity, failures=failures, minutes=minutes, action=action, url=url, id=int(rid)
    )


def conflict_of(row: tuple[Any, ...]) -> ParkedConflict:
    cid, entity, company, key, cds, scm, event_id, cds_at, scm_at, detected, status, winner, by, at = row
    return ParkedConflict(
        entity=entity,
        company=company,
        key=key,
        cds_values=json.loads(cds),
        scm_values=json.loads(scm),
        event_id=event_id,
        cds_modified_at=cds_at,
        scm_modified_at=scm_at,
        detected_at=detected,
        status=ConflictStatus(status),
        winner=winner,
        resolved_by=by,
        resolved_at=at,
        id=int(cid),
    )
