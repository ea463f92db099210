"""A pooled async PostgreSQL database in one schema, with versioned migrations safe for many replicas.

Why psycopg 3 (with psycopg_pool) and not asyncpg: psycopg ships its own type hints (``mypy --strict``
without third-party stubs), its binary wheel carries libpq (nothing to compile or install on the
machine), its pool is the project's own (``psycopg_pool``), and it speaks LISTEN/NOTIFY on an
async connection, which the queue uses to wake every replica when work arrives.

- ``PgDatabase(url, schema)``: one ``AsyncConnectionPool`` whose connections have
  ``search_path = <schema>`` and ``TimeZone = UTC``; ``run(fn)`` runs ``fn(conn)`` in one transaction,
  again from the start when PostgreSQL aborts it for a deadlock or a serialization failure.
- Migrations: each component (``queue``, ``state``) is a list of SQL steps; ``open`` applies the
  steps a schema has not had yet, in one transaction under ``pg_advisory_xact_lock`` (one key per
  schema), recording each in ``schema_migrations``. Several replicas starting at once: the first
  applies, the others wait on the lock and then find nothing to do.

The URL is a secret (it may hold a password): it is never logged nor put in an error; errors name
the host and database only.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import psycopg
from psycopg import AsyncConnection, errors, sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from bridge.core.errors import ConfigError
from bridge.storage.pgconfig import DEFAULT_OPTIONS, PgOptions

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
RETRIES = 5  # a deadlock or serialization failure: the transaction runs again, this many times at most
_RETRYABLE = (errors.DeadlockDetected, errors.SerializationFailure)

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    component  text NOT NULL,
    version    integer NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (component, version)
)
"""


def check_schema(schema: str) -> str:
    """``schema`` if it is a plain lower-case identifier (it names a schema and a NOTIFY channel)."""
    if not SCHEMA_NAME.match(schema):
        raise ConfigError(
            f"{schema!r} is not a schema name: lower-case letters, digits and _ (63 at most)",
            field="database.schema",
        )
    return schema


def where(url: str) -> str:
    """The host, port and database of ``url`` for messages: never the user or the password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "PostgreSQL (an unreadable DUALWRITE_DATABASE_URL)"
    host = parts.get("host") or "localhost"
    return f"PostgreSQL at {host}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"


async def migrate(conn: AsyncConnection, schema: str, component: str, steps: Sequence[str]) -> int:
    """Apply the steps of ``component`` that ``schema`` lacks (one transaction, under the schema's
    migration lock); returns how many were applied now."""
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"dualwrite-migrate|{schema}",)
        )
        await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        await conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        await conn.execute(MIGRATIONS_TABLE)
        cur = await conn.execute(
            "SELECT coalesce(max(version), 0) FROM schema_migrations WHERE component = %s", (component,)
        )
        row = await cur.fetchone()
        done = int(row[0]) if row else 0
        for version, step in enumerate(steps, start=1):
            if version <= done:
                continue
            await conn.execute(step)  # a step is trusted DDL from this package, never input
            await conn.execute(
                "INSERT INTO schema_migrations(component, version) VALUES (%s, %s)", (component, version)
            )
        applied = max(len(steps) - done, 0)
    if applied:
        log.info("PostgreSQL schema %s: %s migrated to version %d", schema, component, len(steps))
    return applied


class PgDatabase:
    """A connection pool on one schema, migrated for ``component`` at ``open``."""

    def __init__(
        self,
        url: str,
        *,
        schema: str,
        component: str,
        migrations: Sequence[str],
        options: PgOptions = DEFAULT_OPTIONS,
    ) -> None:
        if not url:
            raise ConfigError(
                "the postgres backend needs DUALWRITE_DATABASE_URL in the environment "
                "(postgresql://user@host:5432/database)",
                field="database_url",
            )
        self._url = url
        self.schema = check_schema(schema)
        self.component = component
        self._migrations = tuple(migrations)
        self._timeout = options.connect_timeout_s
        if options.synchronous_commit not in ("on", "off"):
            raise ConfigError("synchronous_commit is on or off", field="database.synchronous_commit")
        self._synchronous_commit = options.synchronous_commit
        self._max_size = options.pool_max
        self._pool = AsyncConnectionPool(
            url,
            min_size=options.pool_min,
            max_size=options.pool_max,
            open=False,
            timeout=self._timeout,
            kwargs={
                "autocommit": True,
                "connect_timeout": max(int(self._timeout), 1),
                # pg_stat_activity names the bridge's pools and their schema
                "application_name": f"dualwrite-{component} {self.schema}"[:63],
            },
            configure=self._configure,
            name=f"dualwrite-{component}",
        )

    @property
    def where(self) -> str:
        """Host, port, database and schema for messages (no credentials)."""
        return f"{where(self._url)} schema {self.schema}"

    @property
    def url(self) -> str:
        """The secret URL itself: only for another connection of this process (never log it)."""
        return self._url

    async def _configure(self, conn: AsyncConnection) -> None:
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        await conn.execute("SET TimeZone TO 'UTC'")
        await conn.execute(sql.SQL("SET synchronous_commit TO {}").format(sql.SQL(self._synchronous_commit)))

    async def open(self) -> None:
        """Open the pool and migrate the schema; a clear error when the server does not answer."""
        try:
            async with await AsyncConnection.connect(
                self._url, autocommit=True, connect_timeout=max(int(self._timeout), 1)
            ) as conn:
                await migrate(conn, self.schema, self.component, self._migrations)
            await self._pool.open(wait=True, timeout=self._timeout)
        except (psycopg.OperationalError, TimeoutError) as exc:
            await self._pool.close()
            raise ConfigError(
                f"cannot reach {where(self._url)}: {_reason(exc)}", field="database_url"
            ) from exc

    async def close(self) -> None:
        await self._pool.close()

    async def run(self, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """``fn(conn)`` in one transaction, run again (at most ``RETRIES`` times) when PostgreSQL
        aborts it for a deadlock or a serialization failure, or once on a new connection when the
        pooled one turns out to be cut (see ``_retried``)."""
        return await self._retried(fn, transaction=True)

    async def call(self, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """``fn(conn)`` for one statement that is its own transaction (a function call: one round
        trip, no BEGIN/COMMIT), run again as ``run`` does."""
        return await self._retried(fn, transaction=False)

    async def read(self, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """``fn(conn)`` outside a transaction (each statement its own): reads and single writes."""
        return await self._retried(fn, transaction=False)

    async def _retried(self, fn: Callable[[AsyncConnection], Awaitable[T]], *, transaction: bool) -> T:
        """A restart or failover of the server cuts every pooled connection, and the pool learns it
        only when one is used: such a connection (``broken`` after an ``OperationalError``) is
        replaced and ``fn`` run again, until a connection that is not cut answers. Its statement may
        have run before the cut: every caller here is safe to repeat (event ids dedupe an enqueue,
        lease tokens a settle, upserts the state; a failure or activity entry may be stored twice)."""
        cuts = 0
        attempt = 0
        while True:
            try:
                async with self._pool.connection() as conn:
                    try:
                        if not transaction:
                            return await fn(conn)
                        async with conn.transaction():
                            return await fn(conn)
                    except psycopg.OperationalError:
                        if cuts > self._max_size or not conn.broken:
                            raise
                        cuts += 1
                        log.warning("a connection to %s was cut: using a new one", self.where)
                        continue
            except _RETRYABLE:
                attempt += 1
                if attempt >= RETRIES:
                    raise
                await asyncio.sleep(0.005 * attempt)

    async def ping(self) -> None:
        """One round trip (readiness)."""
        async with self._pool.connection() as conn:
            await conn.execute("SELECT 1")


async def reset_schema(database_url: str, schema: str) -> None:
    """Drop ``schema`` (its tables only: CASCADE stays inside it) and create it empty: the replica
    demo's fresh start, which never touches other data in the database."""
    check_schema(schema)
    try:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    except psycopg.Error as exc:
        # The URL may hold a password: say what failed, never the URL.
        raise ConfigError(f"PostgreSQL: {str(exc).strip()}", field="database_url") from exc


def _reason(exc: BaseException) -> str:
    """libpq's message without anything that could be a password (it never prints one, but be sure)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"password=\S+", "password=***", text)
