"""The initial sync (w-init's tests/e2e/test_initial_sync.py) with the bridge's state in PostgreSQL: its
runs, checkpoints and per-record errors in tables (bridge/state/postgres_sync.py) instead of state.db.
The tests are the SQLite ones, collected here again with ``storage_backend`` = "postgres"."""

from __future__ import annotations

import pytest

from bridge.state.postgres import PostgresState
from tests.e2e.harness import Harness
from tests.e2e.test_initial_sync import (
    test_both_sides_end_equal_with_the_masters_values,
    test_every_error_is_kept_with_both_messages_and_a_failed_only_run_retries_them,
    test_live_changes_during_the_run_are_applied_after_it_never_overwritten,
)

__all__ = [
    "test_both_sides_end_equal_with_the_masters_values",
    "test_every_error_is_kept_with_both_messages_and_a_failed_only_run_retries_them",
    "test_live_changes_during_the_run_are_applied_after_it_never_overwritten",
]


@pytest.fixture
def storage_backend() -> str:
    return "postgres"


@pytest.fixture
def webhook_mode() -> str:
    return "async"  # as the SQLite module runs them


async def test_the_sync_runs_are_kept_in_postgres(env: Harness) -> None:
    assert isinstance(env.bridge.state, PostgresState)
    assert await env.bridge.state.sync_runs() == []
