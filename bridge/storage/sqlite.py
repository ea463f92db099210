"""One SQLite connection owned by one dedicated thread, driven from asyncio.

Why a dedicated thread and not aiosqlite: aiosqlite also runs each connection in its own thread,
but every ``execute``/``fetch``/``commit`` is a separate hop between the event loop and that thread.
A queue operation is a small transaction of 3-6 statements, so with aiosqlite it costs 5-8 hops;
here the whole transaction is one plain function run in the thread: one hop per operation.
Measured on the 2-core CI machine (enqueue + lease + complete, batch 1): ~2,650 cycles/s here
against ~710 cycles/s for the same transactions written with aiosqlite (docs/queue-and-state.md).

The connection runs in autocommit mode (``isolation_level=None``); writers open ``BEGIN IMMEDIATE``
through :func:`transaction`, so the write lock is taken up front and never upgraded mid-way.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from bridge.core.errors import ConfigError

T = TypeVar("T")

SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SqliteDb:
    """A WAL-mode SQLite file with its own worker thread; ``run(fn)`` calls ``fn(conn)`` there."""

    def __init__(
        self,
        path: Path | str,
        *,
        schema: str,
        synchronous: str = "NORMAL",
        busy_timeout_s: float = 5.0,
        cache_kib: int = 16384,
        name: str = "sqlite",
    ) -> None:
        level = synchronous.upper()
        if level not in SYNCHRONOUS_LEVELS:
            raise ConfigError(
                f"synchronous must be one of {', '.join(SYNCHRONOUS_LEVELS)}, not {synchronous!r}"
            )
        self.path = Path(path)
        self._schema = schema
        self._synchronous = level
        self._busy_timeout_s = busy_timeout_s
        self._cache_kib = cache_kib  # bounds SQLite's page cache: memory stays flat with the backlog
        self._name = name
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    @property
    def is_open(self) -> bool:
        return self._executor is not None

    async def open(self) -> None:
        if self._executor is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
        try:
            await self._submit(self._connect)
        except BaseException:
            self._executor.shutdown(wait=True)
            self._executor = None
            raise

    def _connect(self) -> None:
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise ConfigError(f"{self.path}: SQLite refused WAL journal mode (got {mode!r})")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute(f"PRAGMA cache_size=-{int(self._cache_kib)}")
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.executescript(self._schema)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._disconnect)
        finally:
            executor.shutdown(wait=True)

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.execute("PRAGMA optimize")
            conn.close()

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the database thread (one hop for a whole transaction)."""
        return await self._submit(lambda: fn(self._require_conn()))

    async def pragma(self, name: str) -> Any:
        """Read one PRAGMA on this connection (tests, diagnostics)."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"not a pragma name: {name!r}")
        return await self.run(lambda c: c.execute(f"PRAGMA {name}").fetchone()[0])

    def _require_conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"{self._name}: database is not open")
        return self._conn

    async def _submit(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise RuntimeError(f"{self._name}: database is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
