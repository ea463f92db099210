"""The SQLite queue's tables and the statements both of its halves share (bridge.queue.sqlite).

Tables (docs/queue-and-state.md has the full schema and how to inspect them):
- ``events``: every queued or dead-lettered event, ``seq`` increasing (AUTOINCREMENT: never reused).
- ``heads``: one row per record key that has events: its oldest event (``head_seq``) and when that
  record may next be leased (``ready_at``: enqueue time, end of a lease, end of a release delay;
  NULL while its head is dead-lettered), and while leased the lease's token and owner. ``lease``
  reads only ``heads`` through the index ``(entity, ready_at)``, one range per map, so its cost does
  not grow with the backlog and a paused map's million queued records are never visited.
- ``depth``: queued (not dead) events per map, kept by every write: ``depth()`` and the list of maps
  for ``lease`` without counting rows.
- ``seen``: event ids with the time they were enqueued, for dedupe; pruned lazily.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from bridge.core.events import ChangeEvent
from bridge.queue.base import QueuedEvent

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL,
    record_key  TEXT NOT NULL,
    entity      TEXT NOT NULL,
    body        TEXT NOT NULL,             -- ChangeEvent.model_dump_json()
    enqueued_at REAL NOT NULL,             -- unix seconds
    attempts    INTEGER NOT NULL DEFAULT 0,  -- times leased
    last_error  TEXT,
    dead_at     REAL,                      -- NULL = queued; set = dead-lettered
    dead_reason TEXT
);
CREATE INDEX IF NOT EXISTS events_record ON events(record_key, seq);
CREATE INDEX IF NOT EXISTS events_entity ON events(entity, seq);
CREATE INDEX IF NOT EXISTS events_dead ON events(seq) WHERE dead_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS heads (
    record_key  TEXT PRIMARY KEY,
    entity      TEXT NOT NULL,
    head_seq    INTEGER NOT NULL,
    ready_at    REAL,                      -- NULL = blocked by a dead letter
    lease_token TEXT,
    lease_owner TEXT                       -- who holds the lease (bridge.storage.owner)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS heads_ready ON heads(entity, ready_at);
CREATE INDEX IF NOT EXISTS heads_next ON heads(ready_at);

CREATE TABLE IF NOT EXISTS depth (
    entity TEXT PRIMARY KEY,
    n      INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS seen (
    event_id TEXT PRIMARY KEY,
    seen_at  REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_age ON seen(seen_at);
"""

# Created after ``migrate``: a file from before lease owners gets its column first.
OWNER_INDEX = "CREATE INDEX IF NOT EXISTS heads_owner ON heads(lease_owner) WHERE lease_owner IS NOT NULL"

# the hot-path reads, named so tests can EXPLAIN them (each must be an index search, never a scan)
LEASE_SQL = (
    "SELECT record_key, head_seq, ready_at FROM heads "
    "WHERE entity = ? AND ready_at <= ? ORDER BY ready_at LIMIT ?"
)
NEXT_HEAD_SQL = "SELECT seq, enqueued_at FROM events WHERE record_key = ? AND seq > ? ORDER BY seq LIMIT 1"
NEXT_READY_SQL = "SELECT min(ready_at) FROM heads WHERE ready_at > ?"
OLDEST_SQL = "SELECT enqueued_at FROM events WHERE entity = ? AND dead_at IS NULL ORDER BY seq LIMIT 1"
RECLAIM_SQL = (
    "UPDATE heads SET ready_at = min(ready_at, ?), lease_token = NULL, lease_owner = NULL "
    "WHERE lease_owner = ?"
)
DEPTH_SQL = "INSERT INTO depth(entity, n) VALUES (?, ?) ON CONFLICT(entity) DO UPDATE SET n = n + excluded.n"


def migrate(conn: sqlite3.Connection) -> None:
    """Bring a file written by an earlier version up to ``SCHEMA`` (run once at open)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(heads)")}
    if "lease_owner" not in columns:
        conn.execute("ALTER TABLE heads ADD COLUMN lease_owner TEXT")
    conn.execute(OWNER_INDEX)


def dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def queued(
    seq: int, body: str, attempts: int, token: str, enqueued_at: float, last_error: str | None
) -> QueuedEvent:
    return QueuedEvent(
        seq=seq,
        event=ChangeEvent.model_validate_json(body),
        attempts=attempts,
        lease_token=token,
        enqueued_at=dt(enqueued_at),
        last_error=last_error,
    )


def advance_head(conn: sqlite3.Connection, record_key: str, after_seq: int) -> None:
    """The record's next event becomes its head (ready since it was enqueued: the oldest waiting
    work goes first), or the record leaves ``heads`` when it has none."""
    nxt = conn.execute(NEXT_HEAD_SQL, (record_key, after_seq)).fetchone()
    if nxt is None:
        conn.execute("DELETE FROM heads WHERE record_key = ?", (record_key,))
    else:
        conn.execute(
            "UPDATE heads SET head_seq = ?, ready_at = ?, lease_token = NULL, lease_owner = NULL "
            "WHERE record_key = ?",
            (nxt[0], nxt[1], record_key),
        )
