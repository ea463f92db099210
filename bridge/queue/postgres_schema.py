"""The PostgreSQL queue's tables (versioned migrations) and the statements both of its halves share.

The tables mirror the SQLite queue's (bridge/queue/sqlite_schema.py), shared by every replica:
- ``events``: every queued or dead-lettered event, ``seq`` increasing (an identity: never reused).
- ``heads``: one row per record key that has events: its oldest event (``head_seq``), when that
  record may next be leased (``ready_at``; NULL while its head is dead-lettered), and while leased
  the lease's token and owner. The row is the record's lock: ``lease`` takes ready heads with
  ``FOR UPDATE SKIP LOCKED``, so two replicas never lease one record at once and never wait on
  each other; settling a lease locks the row first and checks the token.
- ``maps``: every map that ever had an event: ``lease`` reads one index range of ``heads`` per map
  not paused, so a paused map's backlog is never visited.
- ``seen``: event ids with when they were enqueued, for dedupe across replicas; pruned lazily.

Depth is counted (a partial index on queued events), not kept in a counter row: a counter would be
one hot row every replica's enqueue and complete waits on.

Times are ``timestamptz`` from the database's clock (``statement_timestamp()``), so replicas whose
clocks differ agree on when a lease runs out.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE events (
        seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id    text NOT NULL,
        record_key  text NOT NULL,
        entity      text NOT NULL,
        body        text NOT NULL,              -- ChangeEvent.model_dump_json()
        enqueued_at timestamptz NOT NULL,
        attempts    integer NOT NULL DEFAULT 0, -- times leased
        last_error  text,
        dead_at     timestamptz,                -- NULL = queued; set = dead-lettered
        dead_reason text
    );
    CREATE INDEX events_record ON events (record_key, seq);
    CREATE INDEX events_entity ON events (entity, seq) WHERE dead_at IS NULL;
    CREATE INDEX events_queued ON events (seq) WHERE dead_at IS NULL;
    CREATE INDEX events_dead ON events (seq) WHERE dead_at IS NOT NULL;
    CREATE INDEX events_event_id ON events (event_id);

    CREATE TABLE heads (
        record_key  text PRIMARY KEY,
        entity      text NOT NULL,
        head_seq    bigint NOT NULL,
        ready_at    timestamptz,                -- NULL = blocked by a dead letter
        lease_token text,
        lease_owner text                        -- who holds the lease (bridge.storage.owner)
    );
    CREATE INDEX heads_ready ON heads (entity, ready_at);
    CREATE INDEX heads_next ON heads (ready_at);
    CREATE INDEX heads_owner ON heads (lease_owner) WHERE lease_owner IS NOT NULL;

    CREATE TABLE maps (entity text PRIMARY KEY);

    CREATE TABLE seen (
        event_id text PRIMARY KEY,
        seen_at  timestamptz NOT NULL
    );
    CREATE INDEX seen_age ON seen (seen_at);
    """,
)

# ready heads of the maps not excluded, oldest first, locked (others' locked rows skipped), then
# leased: one statement, one round trip
LEASE_SQL = """
WITH candidates AS (
    SELECT h.record_key, h.ready_at AS was_ready, h.head_seq
    FROM maps m CROSS JOIN LATERAL (
        SELECT record_key, ready_at, head_seq FROM heads
        WHERE heads.entity = m.entity AND ready_at <= statement_timestamp()
        ORDER BY ready_at LIMIT %(n)s
        FOR UPDATE SKIP LOCKED
    ) h
    WHERE m.entity <> ALL(%(excluded)s::text[])
    ORDER BY h.ready_at, h.head_seq LIMIT %(n)s
), leased AS (
    UPDATE heads SET ready_at = statement_timestamp() + make_interval(secs => %(lease)s),
        lease_token = %(prefix)s || gen_random_uuid()::text, lease_owner = %(owner)s
    FROM candidates WHERE heads.record_key = candidates.record_key
    RETURNING heads.head_seq, heads.lease_token, candidates.was_ready
)
UPDATE events SET attempts = events.attempts + 1 FROM leased WHERE events.seq = leased.head_seq
RETURNING events.seq, events.body, events.attempts, events.enqueued_at, events.last_error,
    leased.lease_token, leased.was_ready
"""

# the record's head row, locked, if ``item``'s lease still holds it
HELD_SQL = "SELECT entity FROM heads WHERE record_key = %s AND head_seq = %s AND lease_token = %s FOR UPDATE"
# seconds until the next head becomes ready (a lease or a delay runs out), by the database's clock
NEXT_READY_SQL = (
    "SELECT extract(epoch FROM min(ready_at) - statement_timestamp()) FROM heads "
    "WHERE ready_at > statement_timestamp()"
)
RECLAIM_SQL = (
    "UPDATE heads SET ready_at = least(ready_at, statement_timestamp()), lease_token = NULL, "
    "lease_owner = NULL WHERE lease_owner = %s"
)
NOTIFY_SQL = "SELECT pg_notify(%s, '')"


def channel(schema: str) -> str:
    """The NOTIFY channel of the queue in ``schema`` (a checked identifier, bridge.storage.postgres)."""
    return f"dualwrite_queue_{schema}"[:63]


async def advance_heads(conn: AsyncConnection[Any], record_keys: list[str]) -> None:
    """Each record's oldest remaining event becomes its head (ready since it was enqueued: the oldest
    waiting work goes first, no lease), or the record leaves ``heads`` when it has none. For records
    whose head event was just removed, their head rows locked by the caller."""
    if not record_keys:
        return
    await conn.execute(
        "UPDATE heads SET head_seq = n.seq, ready_at = n.enqueued_at, lease_token = NULL, "
        "lease_owner = NULL FROM (SELECT DISTINCT ON (record_key) record_key, seq, enqueued_at "
        "FROM events WHERE record_key = ANY(%s) ORDER BY record_key, seq) n "
        "WHERE heads.record_key = n.record_key",
        (record_keys,),
    )
    await conn.execute(
        "DELETE FROM heads WHERE record_key = ANY(%s) "
        "AND NOT EXISTS (SELECT 1 FROM events e WHERE e.record_key = heads.record_key)",
        (record_keys,),
    )


async def lock_heads(conn: AsyncConnection[Any], record_keys: list[str]) -> None:
    """Lock the records' head rows, in key order (two transactions never wait on each other in a
    circle)."""
    if record_keys:
        await conn.execute(
            "SELECT 1 FROM heads WHERE record_key = ANY(%s) ORDER BY record_key FOR UPDATE",
            (sorted(set(record_keys)),),
        )
