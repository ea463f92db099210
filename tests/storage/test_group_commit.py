"""Group commit in ``SqliteDb``: operations submitted while one runs share the next transaction."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bridge.storage.sqlite import SqliteDb, transaction

SCHEMA = "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqliteDb]:
    database = SqliteDb(tmp_path / "g.db", schema=SCHEMA, name="test-db")
    await database.open()
    yield database
    await database.close()


def _insert(key: str, value: int) -> Callable[[sqlite3.Connection], int]:
    def run(conn: sqlite3.Connection) -> int:
        with transaction(conn):
            conn.execute("INSERT INTO t (k, v) VALUES (?, ?)", (key, value))
        return value

    return run


class Gate:
    """An operation that holds the database thread until ``release()``: whatever is submitted
    meanwhile waits, and goes as the next group."""

    def __init__(self, db: SqliteDb) -> None:
        self._started, self._open = threading.Event(), threading.Event()
        self.done = asyncio.ensure_future(db.run(self._hold))

    def _hold(self, conn: sqlite3.Connection) -> None:
        self._started.set()
        if not self._open.wait(10):
            raise TimeoutError("the gate was never released")

    async def held(self) -> Gate:
        assert await asyncio.to_thread(self._started.wait, 10), "the gate never held the thread"
        return self

    def release(self) -> None:
        self._open.set()


def _rows(path: Path) -> dict[str, int]:
    """What another connection sees: committed data only."""
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT k, v FROM t").fetchall())
    finally:
        conn.close()


async def test_concurrent_operations_share_transactions_and_each_gets_its_result(
    db: SqliteDb, tmp_path: Path
) -> None:
    gate = await Gate(db).held()
    groups_before = db.groups_run
    calls = asyncio.gather(*(db.run(_insert(f"k{n}", n)) for n in range(50)))
    await asyncio.sleep(0.01)  # all 50 submitted while the gate holds the thread
    gate.release()
    assert await calls == list(range(50))
    await gate.done
    assert db.groups_run - groups_before == 1  # the 50 went as one group
    assert _rows(tmp_path / "g.db") == {f"k{n}": n for n in range(50)}  # committed when answered


async def test_a_failing_operation_rolls_back_alone(db: SqliteDb, tmp_path: Path) -> None:
    await db.run(_insert("dup", 1))

    def two_statements_then_fail(conn: sqlite3.Connection) -> None:
        with transaction(conn):
            conn.execute("INSERT INTO t (k, v) VALUES ('half', 1)")
            conn.execute("INSERT INTO t (k, v) VALUES ('dup', 2)")  # primary key clash

    calls = [
        db.run(_insert("a", 1)),
        db.run(_insert("b", 2)),
        db.run(two_statements_then_fail),
        db.run(_insert("c", 3)),
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert results[0] == 1 and results[1] == 2 and results[3] == 3
    assert isinstance(results[2], sqlite3.IntegrityError)
    rows = _rows(tmp_path / "g.db")
    assert rows == {"dup": 1, "a": 1, "b": 2, "c": 3}  # 'half' rolled back with its operation only


async def test_a_failed_commit_fails_every_operation_of_the_group(db: SqliteDb, tmp_path: Path) -> None:
    await db.run(lambda c: c.execute("CREATE TABLE p (id INTEGER PRIMARY KEY)"))
    await db.run(
        lambda c: c.execute("CREATE TABLE ch (p INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)")
    )
    await db.run(lambda c: c.execute("PRAGMA foreign_keys=ON"))

    def dangling(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO ch (p) VALUES (42)")  # checked only at COMMIT

    gate = await Gate(db).held()
    calls = asyncio.gather(db.run(_insert("x", 1)), db.run(dangling), return_exceptions=True)
    await asyncio.sleep(0.01)
    gate.release()
    results = await calls
    await gate.done
    assert all(isinstance(r, sqlite3.IntegrityError) for r in results)
    assert "x" not in _rows(tmp_path / "g.db")  # nothing of the failed group is durable


async def test_the_thread_goes_on_with_what_waits_without_the_loop(db: SqliteDb) -> None:
    # The next group starts when the last one ends, not when a busy loop gets round to taking its
    # results: here the loop is blocked outright, and the waiting operation still runs.
    gate = await Gate(db).held()
    ran = threading.Event()
    waiting = asyncio.ensure_future(db.run(lambda c: ran.set()))
    await asyncio.sleep(0.01)
    gate.release()
    assert ran.wait(10)  # blocks the event loop on purpose
    await asyncio.gather(gate.done, waiting)


async def test_a_lone_operation_runs_outside_any_group_transaction(db: SqliteDb) -> None:
    # Alone, an operation sees no open transaction: it can open its own, as before.
    assert await db.run(lambda c: c.in_transaction) is False


async def test_close_waits_for_what_was_submitted(tmp_path: Path) -> None:
    database = SqliteDb(tmp_path / "c.db", schema=SCHEMA, name="test-db")
    await database.open()
    pending = [asyncio.ensure_future(database.run(_insert(f"k{n}", n))) for n in range(10)]
    await asyncio.sleep(0)
    await database.close()
    assert [p.result() for p in pending] == list(range(10))
    assert len(_rows(tmp_path / "c.db")) == 10
    with pytest.raises(RuntimeError, match="not open"):
        await database.run(lambda c: None)
