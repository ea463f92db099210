"""SQLite-specific behaviour of the embedded state store (the shared contract is in tests/contract/)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.core.errors import ConfigError
from bridge.state.sqlite import SqliteState
from tests.contract.test_state_contract import make_entry, make_failure


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[SqliteState]:
    s = SqliteState(tmp_path / "state.db")
    await s.open()
    yield s
    await s.close()


def plan(path: Path, sql: str, args: tuple[object, ...]) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args)]


async def test_file_is_in_wal_mode_with_the_chosen_sync_level(tmp_path: Path) -> None:
    s = SqliteState(tmp_path / "state.db", synchronous="FULL")
    await s.open()
    try:
        assert await s.pragma("journal_mode") == "wal"
        assert await s.pragma("synchronous") == 2
    finally:
        await s.close()


def test_unknown_synchronous_setting_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="synchronous"):
        SqliteState(tmp_path / "state.db", synchronous="MAYBE")


async def test_pragma_refuses_anything_but_a_name(state: SqliteState) -> None:
    with pytest.raises(ValueError, match="pragma"):
        await state.pragma("synchronous; DROP TABLE ledger")


async def test_rows_read_plainly_in_the_sqlite3_shell(state: SqliteState) -> None:
    await state.put_ledger(make_entry())
    with sqlite3.connect(state.path) as conn:
        image, modified = conn.execute("SELECT scm_image, scm_written_at FROM ledger").fetchone()
    assert json.loads(image) == make_entry().scm_image
    assert modified == "2024-05-01T12:00:01.123456+00:00"


async def test_naive_datetimes_are_taken_as_utc(state: SqliteState) -> None:
    naive = dataclasses.replace(make_entry(), cds_written_at=datetime(2024, 1, 2, 3, 4, 5))
    await state.put_ledger(naive)
    got = await state.get_ledger(naive.record_key)
    assert got is not None and got.cds_written_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


async def test_an_image_that_is_not_json_is_refused_and_nothing_written(state: SqliteState) -> None:
    bad = dataclasses.replace(make_entry(), cds_image={"when": {1, 2}})
    with pytest.raises(TypeError):
        await state.put_ledger(bad)
    assert await state.get_ledger(bad.record_key) is None


async def test_lookups_and_pages_are_index_searches(state: SqliteState) -> None:
    await state.put_ledger(make_entry())
    await state.add_failure(make_failure(1, corr="c"))
    checks = {
        "cds_id": plan(state.path, "SELECT record_key FROM ledger WHERE cds_id = ? LIMIT 1", ("x",)),
        "page": plan(state.path, "SELECT id FROM failures ORDER BY occurred_at DESC, id DESC LIMIT 10", ()),
        "page_entity": plan(
            state.path,
            "SELECT id FROM failures WHERE entity = ? ORDER BY occurred_at DESC, id DESC LIMIT 10",
            ("warehouse",),
        ),
        "correlation": plan(state.path, "SELECT id FROM failures WHERE correlation_id = ?", ("c",)),
    }
    for name, steps in checks.items():
        assert steps and all("INDEX" in s and "TEMP B-TREE" not in s for s in steps), (name, steps)


async def test_open_journal_entries_are_listed_oldest_first(state: SqliteState) -> None:
    await state.put_journal("cds:2", {"n": 2})
    await state.put_journal("cds:1", {"n": 1})
    await state.drop_journal("cds:2")
    await state.put_journal("cds:3", {"n": 3})
    assert await state.journal_ids() == ["cds:1", "cds:3"]
