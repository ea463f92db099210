"""SQLite-specific behaviour of the embedded queue (the shared contract is in tests/contract/)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import bridge.queue.sqlite as queue_module
from bridge.core.errors import ConfigError
from bridge.core.events import ChangeEvent
from bridge.queue.factory import open_queue
from bridge.queue.sqlite import LEASE_SQL, NEXT_HEAD_SQL, NEXT_READY_SQL, OLDEST_SQL, SCHEMA, SqliteQueue
from bridge.queue.sqlite_schema import RECLAIM_SQL
from tests.contract.queue_support import make_event

REPO = Path(__file__).resolve().parents[2]

# A separate interpreter (not a fork of the test process) that writes to the queue until killed.
CHILD = r"""
import asyncio, sys
from bridge.core.events import ChangeEvent
from bridge.queue.sqlite import SqliteQueue

def event(n):
    return ChangeEvent(event_id=f"k{n}", source="scm", entity="warehouse", company="USMF",
                       key=f"R{n % 7}", operation="update", changed={"n": n})

async def main(path, mode, owner):
    q = SqliteQueue(path, owner=owner)
    await q.open()
    if mode == "enqueue":
        n = 0
        while True:
            await q.enqueue(event(n))
            print(n, flush=True)  # only after enqueue returned: this event is acknowledged
            n += 1
    else:
        await q.enqueue_many([event(n) for n in range(7)])
        items = await q.lease(3, float(mode))
        print(" ".join(str(i.seq) for i in items), flush=True)
        await asyncio.sleep(60)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
"""


def start_child(path: Path, mode: str, *owner: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), mode, *owner],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        assert proc.stderr is not None
        pytest.fail(f"child exited early: {proc.stderr.read()}")
    return line.strip()


def kill(proc: subprocess.Popen[str]) -> list[str]:
    """SIGKILL the child; the acknowledgements it printed before dying."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert proc.stdout is not None and proc.stderr is not None
    rest = proc.stdout.read().split()
    proc.stderr.close()
    proc.stdout.close()
    return rest


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[SqliteQueue]:
    q = SqliteQueue(tmp_path / "q.db")
    await q.open()
    yield q
    await q.close()


# ---- settings and file -------------------------------------------------------------------------


async def test_file_is_in_wal_mode(queue: SqliteQueue) -> None:
    with sqlite3.connect(queue.path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(("setting", "level"), [("NORMAL", 1), ("full", 2)])
async def test_synchronous_setting_is_applied(tmp_path: Path, setting: str, level: int) -> None:
    q = SqliteQueue(tmp_path / "q.db", synchronous=setting)
    await q.open()
    try:
        assert await q.pragma("synchronous") == level
    finally:
        await q.close()


def test_unknown_synchronous_setting_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="synchronous"):
        SqliteQueue(tmp_path / "q.db", synchronous="SOMETIMES")


async def test_use_before_open_fails_clearly_and_open_close_are_idempotent(tmp_path: Path) -> None:
    q = SqliteQueue(tmp_path / "sub" / "q.db")
    with pytest.raises(RuntimeError, match="not open"):
        await q.depth()
    await q.open()
    await q.open()
    assert await q.depth() == 0
    await q.close()
    await q.close()
    with pytest.raises(RuntimeError, match="not open"):
        await q.enqueue(make_event(1))


async def test_lease_seconds_must_be_positive(queue: SqliteQueue) -> None:
    await queue.enqueue(make_event(1))
    with pytest.raises(ValueError, match="lease_seconds"):
        await queue.lease(1, 0)
    assert len(await queue.lease(1, 30)) == 1


async def test_seq_is_never_reused_after_the_queue_empties(queue: SqliteQueue) -> None:
    await queue.enqueue(make_event(1))
    [first] = await queue.lease(1, 30)
    await queue.complete(first)
    await queue.enqueue(make_event(2))
    [second] = await queue.lease(1, 30)
    assert second.seq > first.seq


async def test_a_lease_from_before_a_restart_cannot_complete_the_new_lease(tmp_path: Path) -> None:
    """Lease tokens are a counter behind a random prefix: a restarted queue counts from the start
    again, so without the prefix its first lease would repeat the first lease before the restart."""
    path = tmp_path / "q.db"
    before = SqliteQueue(path)
    await before.open()
    await before.enqueue(make_event(1))
    [stale] = await before.lease(1, 0.05)
    await before.close()
    await asyncio.sleep(0.1)  # the lease expires; the record's head is leasable again
    after = SqliteQueue(path)
    await after.open()
    try:
        [fresh] = await after.lease(1, 30)
        assert fresh.seq == stale.seq and fresh.lease_token != stale.lease_token
        assert await after.complete(stale) is False
        assert await after.complete(fresh) is True
    finally:
        await after.close()


# ---- dedupe window -----------------------------------------------------------------------------


async def test_event_id_is_accepted_again_after_the_dedupe_window(tmp_path: Path) -> None:
    q = SqliteQueue(tmp_path / "q.db", dedupe_retention_s=0.1)
    await q.open()
    try:
        assert await q.enqueue(make_event(1)) is True
        await q.complete_many(await q.lease(1, 30))
        assert await q.enqueue(make_event(1)) is False
        await asyncio.sleep(0.15)
        assert await q.enqueue(make_event(1)) is True
    finally:
        await q.close()


async def test_old_event_ids_are_pruned_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue_module, "PRUNE_EVERY", 4)
    q = SqliteQueue(tmp_path / "q.db", dedupe_retention_s=0.05)
    await q.open()
    try:
        await q.enqueue_many([make_event(n, key=f"K{n}") for n in range(3)])
        await asyncio.sleep(0.1)
        await q.enqueue(make_event(10))  # the 4th enqueue prunes the three expired ids
        with sqlite3.connect(q.path) as other:
            assert [r[0] for r in other.execute("SELECT event_id FROM seen")] == ["evt-warehouse-10"]
    finally:
        await q.close()


# ---- cost independent of the backlog -------------------------------------------------------------


def explain(conn: sqlite3.Connection, sql: str, args: tuple[object, ...]) -> list[str]:
    return [str(row[3]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args)]


async def test_hot_path_reads_are_index_searches(queue: SqliteQueue) -> None:
    await queue.enqueue_many([make_event(n, key=f"K{n % 10}") for n in range(50)])
    now = time.time()
    with sqlite3.connect(queue.path) as other:
        plans = {
            "lease": explain(other, LEASE_SQL, ("warehouse", now, 50)),
            "next_head": explain(other, NEXT_HEAD_SQL, ("warehouse|USMF|K1", 0)),
            "next_ready": explain(other, NEXT_READY_SQL, (now,)),
            "oldest": explain(other, OLDEST_SQL, ("warehouse",)),
            "reclaim": explain(other, RECLAIM_SQL, (now, "bridge-1")),
        }
    for name, plan in plans.items():
        assert plan and all(step.startswith("SEARCH") and "INDEX" in step for step in plan), (name, plan)
    assert all("TEMP B-TREE" not in step for plan in plans.values() for step in plan)


async def lease_vm_steps(queue: SqliteQueue) -> int:
    """SQLite virtual-machine steps one lease of the running map costs (deterministic, unlike time)."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    await queue.db.run(lambda c: c.set_progress_handler(count, 1))
    try:
        items = await queue.lease(10, 30, exclude_entities={"warehouse"})
    finally:
        await queue.db.run(lambda c: c.set_progress_handler(None, 1))
    assert len(items) == 10
    await queue.complete_many(items)
    return steps


async def test_lease_cost_does_not_grow_with_a_paused_backlog(queue: SqliteQueue) -> None:
    def running(tag: str) -> list[ChangeEvent]:
        return [make_event(n, entity="ship_via", key=f"S{n}", event_id=f"{tag}{n}") for n in range(10)]

    await queue.enqueue_many([make_event(n, key=f"K{n}") for n in range(200)])
    await queue.enqueue_many(running("a"))
    small = await lease_vm_steps(queue)
    for start in range(200, 20_200, 2000):
        await queue.enqueue_many([make_event(n, key=f"K{n}") for n in range(start, start + 2000)])
    await queue.enqueue_many(running("b"))
    large = await lease_vm_steps(queue)
    assert await queue.depth("warehouse") == 20_200
    assert large <= small * 1.2, (small, large)


# ---- kill -9 -----------------------------------------------------------------------------------


async def drain_all(path: Path) -> list[int]:
    q = SqliteQueue(path)
    await q.open()
    try:
        seen: list[int] = []
        while batch := await q.lease(100, 30):
            seen += [int(i.event.changed["n"]) for i in batch]
            await q.complete_many(batch)
        assert await q.enqueue(make_event(0, event_id="k0")) is False  # the dedupe ids survived too
        return seen
    finally:
        await q.close()


def test_kill_9_mid_stream_loses_no_acknowledged_event(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    proc = start_child(path, "enqueue")
    acked = [int(read_line(proc)) for _ in range(300)]
    acked += [int(n) for n in kill(proc)]
    assert acked == list(range(len(acked)))

    got = asyncio.run(drain_all(path))
    assert len(got) == len(set(got))  # exactly once
    assert set(acked) <= set(got)
    assert len(got) <= len(acked) + 1  # at most the one in flight when killed (durable, not acked)
    for record in range(7):  # per-record order kept
        mine = [n for n in got if n % 7 == record]
        assert mine == sorted(mine)


async def reopen_and_lease(path: Path, wait_until: float) -> tuple[set[int], list[tuple[int, int]]]:
    q = SqliteQueue(path)
    await q.open()
    try:
        before = {i.seq for i in await q.lease(100, 30)}
        await asyncio.sleep(max(wait_until - time.monotonic(), 0))
        after = [(i.seq, i.attempts) for i in await q.lease(100, 30)]
        return before, after
    finally:
        await q.close()


def test_leases_of_a_killed_worker_come_back_after_expiry(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    lease_s = 1.0
    proc = start_child(path, str(lease_s))
    leased = {int(s) for s in read_line(proc).split()}
    expires = time.monotonic() + lease_s + 0.1
    kill(proc)
    assert len(leased) == 3

    available_now, after_expiry = asyncio.run(reopen_and_lease(path, expires))
    assert len(available_now) == 4 and available_now.isdisjoint(leased)
    assert sorted(after_expiry) == sorted((seq, 1) for seq in leased)


async def reopen_as(path: Path, owner: str) -> tuple[int, set[int]]:
    """Open the file as ``owner`` the way the bridge does: (leases taken back, seqs leasable now)."""
    q = SqliteQueue(path, owner=owner)
    try:
        taken = await open_queue(q)
        return taken, {item.seq for item in await q.lease(100, 30)}
    finally:
        await q.close()


def test_a_killed_owner_reopening_takes_its_leases_back_at_once(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    proc = start_child(path, "60", "bridge-1")  # 60 s leases: the default, nowhere near expiry
    leased = {int(s) for s in read_line(proc).split()}
    kill(proc)
    assert len(leased) == 3
    taken, available = asyncio.run(reopen_as(path, "bridge-1"))
    assert taken == 3 and leased <= available and len(available) == 7


def test_another_owner_reopening_leaves_a_killed_owners_leases_to_run_out(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    proc = start_child(path, "60", "bridge-1")
    leased = {int(s) for s in read_line(proc).split()}
    kill(proc)
    taken, available = asyncio.run(reopen_as(path, "bridge-2"))
    assert taken == 0 and available.isdisjoint(leased) and len(available) == 4


async def test_a_file_from_before_lease_owners_gets_the_column_and_its_old_leases_run_out(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    old_schema = re.sub(r"lease_token TEXT,\n\s*lease_owner TEXT[^\n]*\n", "lease_token TEXT\n", SCHEMA)
    assert "lease_owner" not in old_schema
    with sqlite3.connect(path) as conn:
        conn.executescript(old_schema)
        now = time.time()
        body = make_event(1).model_dump_json()
        conn.execute(
            "INSERT INTO events(seq, event_id, record_key, entity, body, enqueued_at, attempts) "
            "VALUES (1, 'evt-warehouse-1', 'warehouse|USMF|W1', 'warehouse', ?, ?, 1)",
            (body, now),
        )
        conn.execute(
            "INSERT INTO heads VALUES ('warehouse|USMF|W1', 'warehouse', 1, ?, 'old-token')", (now + 60,)
        )
        conn.execute("INSERT INTO depth VALUES ('warehouse', 1)")
    q = SqliteQueue(path, owner="bridge-1")
    try:
        assert await open_queue(q) == 0  # an old lease names nobody: nothing to take back
        assert await q.lease(10, 30) == []  # it runs out as before
        assert await q.depth() == 1
        columns = await q.db.run(lambda c: [r[1] for r in c.execute("PRAGMA table_info(heads)")])
        assert "lease_owner" in columns
        await q.enqueue(make_event(2, key="W2"))
        [item] = await q.lease(10, 30)
        assert await q.reclaim("bridge-1") == 1 and item.event.key == "W2"
    finally:
        await q.close()


# ---- one operation per turn (TurnBatcher) -------------------------------------------------------


class Statements:
    """The statements the queue's connection runs, from ``start()`` to ``stop()``."""

    def __init__(self, queue: SqliteQueue) -> None:
        self.queue = queue
        self.seen: list[str] = []

    async def start(self) -> None:
        await self.queue.db.run(lambda c: c.set_trace_callback(self.seen.append))

    async def stop(self) -> None:
        await self.queue.db.run(lambda c: c.set_trace_callback(None))

    def transactions(self) -> int:
        """Transactions and savepoints the operations ended: one per operation (plus a group's own)."""
        return sum(1 for s in self.seen if s in ("COMMIT", "RELEASE tx"))


async def test_concurrent_enqueues_are_one_database_operation(queue: SqliteQueue) -> None:
    events = [make_event(n, key=f"R{n}") for n in range(20)]
    statements = Statements(queue)
    await statements.start()
    added = await asyncio.gather(*(queue.enqueue(e) for e in events), queue.enqueue(events[3]))
    await statements.stop()
    assert added == [True] * 20 + [False]  # the repeat in the same turn is still a repeat
    assert statements.transactions() <= 2  # one operation (in a group of its own or not), not 21
    assert sum(1 for s in statements.seen if s.startswith("INSERT INTO depth")) == 1
    assert await queue.depth() == 20


async def test_concurrent_completions_are_one_operation_and_a_stale_lease_is_still_refused(
    queue: SqliteQueue,
) -> None:
    for n in range(10):
        await queue.enqueue(make_event(n, key=f"R{n}"))
    items = await queue.lease(10, 30.0)
    stale = dataclasses.replace(items[0], lease_token="someone-else")
    statements = Statements(queue)
    await statements.start()
    done = await asyncio.gather(*(queue.complete(i) for i in [stale, *items[1:]]))
    await statements.stop()
    assert done == [False] + [True] * 9
    assert statements.transactions() <= 2  # one operation, not 10
    assert await queue.depth() == 1  # only the stale one's event is left


async def test_close_runs_what_was_submitted_in_its_turn(tmp_path: Path) -> None:
    q = SqliteQueue(tmp_path / "c.db")
    await q.open()
    pending = asyncio.ensure_future(q.enqueue(make_event(1, key="R1")))
    await asyncio.sleep(0)  # submitted; its flush is on the next turn
    await q.close()
    assert pending.result() is True
    reopened = SqliteQueue(tmp_path / "c.db")
    await reopened.open()
    try:
        assert await reopened.depth() == 1
    finally:
        await reopened.close()
