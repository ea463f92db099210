"""``LeaseClaim.claim`` on the PostgreSQL queue (bridge/queue/postgres.py): one named event leased to
the replica that holds its synchronous originator's call (bridge/engine/ownership.py).

One ``UPDATE`` of the record's ``heads`` row: it takes the row lock (waiting for a ``lease`` or a
settle of the same record in flight, then looking again), and changes the row only when its head
is this event, no dead letter holds it (``ready_at`` NULL) and no live lease does (a release's
delay is no lease). Then the event's attempt is counted, as ``lease`` counts it.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from bridge.core.events import ChangeEvent
from bridge.queue.base import QueuedEvent

CLAIM_SQL = (
    "UPDATE heads h SET ready_at = statement_timestamp() + make_interval(secs => %s), "
    "lease_token = %s, lease_owner = %s "
    "FROM events e WHERE h.record_key = %s AND e.seq = h.head_seq AND e.event_id = %s "
    "AND e.dead_at IS NULL AND h.ready_at IS NOT NULL "
    "AND (h.lease_token IS NULL OR h.ready_at <= statement_timestamp()) "
    "RETURNING h.head_seq"
)
COUNT_SQL = (
    "UPDATE events SET attempts = attempts + 1 WHERE seq = %s "
    "RETURNING body, attempts, enqueued_at, last_error"
)


async def claim_tx(
    conn: AsyncConnection[Any], event: ChangeEvent, lease_seconds: float, token: str, owner: str
) -> QueuedEvent | None:
    cur = await conn.execute(CLAIM_SQL, (lease_seconds, token, owner, event.record_key, event.event_id))
    row = await cur.fetchone()
    if row is None:
        return None
    seq = int(row[0])
    cur = await conn.execute(COUNT_SQL, (seq,))
    counted = await cur.fetchone()
    assert counted is not None
    body, attempts, enqueued_at, last_error = counted
    return QueuedEvent(
        seq=seq,
        event=ChangeEvent.model_validate_json(body),
        attempts=int(attempts) - 1,
        lease_token=token,
        enqueued_at=enqueued_at,
        last_error=last_error,
    )
