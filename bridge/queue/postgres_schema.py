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
    # The two hot writes as functions: one round trip each (autocommit), instead of one per statement.
    """
    CREATE FUNCTION dualwrite_enqueue(
        p_event_ids text[], p_record_keys text[], p_entities text[], p_bodies text[],
        p_retention_s double precision, p_lock_prefix text, p_channel text,
        p_lease_s double precision, p_token text, p_owner text
    ) RETURNS TABLE (out_seq bigint, out_at timestamptz, out_leased boolean)
    LANGUAGE plpgsql AS $fn$
    DECLARE
        n int := coalesce(array_length(p_event_ids, 1), 0);
        seqs bigint[] := array_fill(NULL::bigint, ARRAY[n]);
        ats timestamptz[] := array_fill(NULL::timestamptz, ARRAY[n]);
        leased boolean[] := array_fill(false, ARRAY[n]);
        i int;
        v_seq bigint;
        v_at timestamptz;
        added int := 0;
    BEGIN
        -- a record's events are numbered under its lock: in the order their enqueues commit
        PERFORM pg_advisory_xact_lock(hashtextextended(p_lock_prefix || k, 0))
        FROM (SELECT DISTINCT k FROM unnest(p_record_keys) AS k ORDER BY k) AS keys;
        INSERT INTO maps(entity) SELECT DISTINCT unnest(p_entities) ON CONFLICT DO NOTHING;
        FOR i IN 1 .. n LOOP
            INSERT INTO seen(event_id, seen_at) VALUES (p_event_ids[i], statement_timestamp())
            ON CONFLICT (event_id) DO UPDATE SET seen_at = excluded.seen_at
            WHERE seen.seen_at < statement_timestamp() - make_interval(secs => p_retention_s);
            CONTINUE WHEN NOT FOUND;  -- seen within the window (or earlier in this call)
            INSERT INTO events(event_id, record_key, entity, body, enqueued_at)
            VALUES (p_event_ids[i], p_record_keys[i], p_entities[i], p_bodies[i], statement_timestamp())
            RETURNING seq, enqueued_at INTO v_seq, v_at;
            seqs[i] := v_seq;
            ats[i] := v_at;
            added := added + 1;
        END LOOP;
        -- heads in key order (every writer locks head rows in one order), a record's oldest first;
        -- DO UPDATE ... WHERE false locks an existing head without a write (a settle in flight first)
        FOR i IN SELECT o FROM unnest(p_record_keys, seqs) WITH ORDINALITY AS u(k, s, o)
                 WHERE s IS NOT NULL ORDER BY k, s LOOP
            IF p_token IS NULL THEN
                INSERT INTO heads(record_key, entity, head_seq, ready_at)
                VALUES (p_record_keys[i], p_entities[i], seqs[i], ats[i])
                ON CONFLICT (record_key) DO UPDATE SET entity = excluded.entity WHERE false;
            ELSE
                INSERT INTO heads(record_key, entity, head_seq, ready_at, lease_token, lease_owner)
                VALUES (p_record_keys[i], p_entities[i], seqs[i],
                        statement_timestamp() + make_interval(secs => p_lease_s), p_token, p_owner)
                ON CONFLICT (record_key) DO UPDATE SET entity = excluded.entity WHERE false;
                IF FOUND THEN  -- the record's only event: leased (one more attempt)
                    UPDATE events SET attempts = 1 WHERE seq = seqs[i];
                    leased[i] := true;
                END IF;
            END IF;
        END LOOP;
        IF added > 0 THEN
            PERFORM pg_notify(p_channel, '');
        END IF;
        RETURN QUERY SELECT * FROM unnest(seqs, ats, leased);
    END
    $fn$;

    CREATE FUNCTION dualwrite_complete(p_record_keys text[], p_seqs bigint[], p_tokens text[])
    RETURNS boolean[]
    LANGUAGE plpgsql AS $fn$
    DECLARE
        n int := coalesce(array_length(p_record_keys, 1), 0);
        done boolean[] := array_fill(false, ARRAY[n]);
        settled text[] := '{}';
        i int;
    BEGIN
        FOR i IN SELECT o FROM unnest(p_record_keys, p_seqs) WITH ORDINALITY AS u(k, s, o) ORDER BY k, s LOOP
            PERFORM 1 FROM heads
            WHERE record_key = p_record_keys[i] AND head_seq = p_seqs[i] AND lease_token = p_tokens[i]
            FOR UPDATE;
            CONTINUE WHEN NOT FOUND;  -- the lease was lost: nothing done
            DELETE FROM events WHERE seq = p_seqs[i];
            settled := settled || p_record_keys[i];
            done[i] := true;
        END LOOP;
        IF array_length(settled, 1) > 0 THEN
            UPDATE heads SET head_seq = nx.seq, ready_at = nx.enqueued_at,
                lease_token = NULL, lease_owner = NULL
            FROM (SELECT DISTINCT ON (e.record_key) e.record_key, e.seq, e.enqueued_at FROM events e
                  WHERE e.record_key = ANY(settled) ORDER BY e.record_key, e.seq) AS nx
            WHERE heads.record_key = nx.record_key;
            DELETE FROM heads WHERE record_key = ANY(settled)
            AND NOT EXISTS (SELECT 1 FROM events e WHERE e.record_key = heads.record_key);
        END IF;
        RETURN done;
    END
    $fn$;
    """,
)

ENQUEUE_SQL = (
    "SELECT out_seq, out_at, out_leased FROM dualwrite_enqueue(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
COMPLETE_SQL = "SELECT dualwrite_complete(%s, %s, %s)"

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
