"""The pooled PostgreSQL database under the queue and the state (bridge/storage/postgres.py), on real
PostgreSQL: migrations applied once when several replicas start together, the options reaching
every connection, and an unreachable server told without the URL's password."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from bridge.core.errors import ConfigError
from bridge.queue.postgres import PostgresQueue
from bridge.queue.postgres_schema import MIGRATIONS
from bridge.state.postgres import MIGRATIONS as STATE_MIGRATIONS
from bridge.storage.pgconfig import PgOptions
from bridge.storage.postgres import PgDatabase, migrate
from tests.pg_support import PG_URL, SchemaFactory, pg_schemas

__all__ = ["pg_schemas"]


async def test_concurrent_migrations_apply_each_step_once(pg_schemas: SchemaFactory) -> None:
    schema = pg_schemas("migrated")
    conns = [await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) for _ in range(6)]
    try:
        applied = await asyncio.gather(*(migrate(c, schema, "queue", MIGRATIONS) for c in conns))
    finally:
        for conn in conns:
            await conn.close()
    assert sorted(applied) == [0] * 5 + [len(MIGRATIONS)]
    with psycopg.connect(PG_URL) as conn:
        rows = conn.execute(
            f'SELECT component, version FROM "{schema}".schema_migrations ORDER BY version'
        ).fetchall()
    assert rows == [("queue", v) for v in range(1, len(MIGRATIONS) + 1)]


async def test_replicas_starting_together_share_one_schema(pg_schemas: SchemaFactory) -> None:
    schema = pg_schemas("together")
    dbs = [PgDatabase(PG_URL, schema=schema, component="queue", migrations=MIGRATIONS) for _ in range(4)]
    try:
        await asyncio.gather(*(db.open() for db in dbs))
        await asyncio.gather(*(db.ping() for db in dbs))
    finally:
        for db in dbs:
            await db.close()


async def test_an_unreachable_server_is_a_clear_error_without_the_password() -> None:
    queue = PostgresQueue("postgresql://bridge:hunter2@127.0.0.1:9/test", schema="dualwrite")
    with pytest.raises(ConfigError) as caught:
        await queue.open()
    assert "127.0.0.1:9/test" in str(caught.value) and "hunter2" not in str(caught.value)


async def test_queue_and_state_migrate_side_by_side_in_one_schema(pg_schemas: SchemaFactory) -> None:
    schema = pg_schemas("both")
    queue = PgDatabase(PG_URL, schema=schema, component="queue", migrations=MIGRATIONS)
    state = PgDatabase(PG_URL, schema=schema, component="state", migrations=STATE_MIGRATIONS)
    await asyncio.gather(queue.open(), state.open())
    await queue.close()
    await state.close()
    again = PgDatabase(PG_URL, schema=schema, component="queue", migrations=MIGRATIONS)
    await again.open()  # nothing left to apply: a restart is not a migration
    await again.close()
    with psycopg.connect(PG_URL) as conn:
        rows = conn.execute(
            f'SELECT component, count(*) FROM "{schema}".schema_migrations GROUP BY 1 ORDER BY 1'
        )
        assert rows.fetchall() == [("queue", len(MIGRATIONS)), ("state", len(STATE_MIGRATIONS))]


@pytest.mark.parametrize("level", ["on", "off"])
async def test_synchronous_commit_reaches_every_connection(pg_schemas: SchemaFactory, level: str) -> None:
    db = PgDatabase(
        PG_URL,
        schema=pg_schemas("sync"),
        component="queue",
        migrations=MIGRATIONS,
        options=PgOptions(pool_min=2, synchronous_commit=level),
    )
    await db.open()
    try:

        async def show(conn: psycopg.AsyncConnection) -> tuple[str, str]:  # type: ignore[type-arg]
            cur = await conn.execute("SELECT current_setting('synchronous_commit'), current_schema()")
            row = await cur.fetchone()
            assert row is not None
            return str(row[0]), str(row[1])

        assert await db.read(show) == (level, db.schema)
    finally:
        await db.close()


def test_a_schema_name_that_is_not_an_identifier_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"database\.schema"):
        PgDatabase(PG_URL, schema='x"; DROP SCHEMA public; --', component="queue", migrations=())
