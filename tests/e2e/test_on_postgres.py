"""End to end on the PostgreSQL queue and state (real PostgreSQL, tests/pg_support.py): the bridge between
both emulators, on tables in a schema of this test, passes the same scenarios as on SQLite. The tests
are the SQLite ones, collected here again with ``storage_backend`` = "postgres"."""

from __future__ import annotations

import pytest

from bridge.queue.postgres import PostgresQueue
from bridge.state.postgres import PostgresState
from tests.e2e.harness import Harness
from tests.e2e.test_entities import test_dataverse_to_fno, test_fno_to_dataverse
from tests.e2e.test_ordering import (
    test_conflict_newer_wins_by_default,
    test_duplicated_notifications_apply_once,
    test_reordered_notifications_end_with_the_newest_state,
)
from tests.e2e.test_queue_capabilities import (
    test_a_synchronous_save_on_a_queue_that_cannot_lease_as_it_enqueues_still_goes_through,
)

__all__ = [
    "test_a_synchronous_save_on_a_queue_that_cannot_lease_as_it_enqueues_still_goes_through",
    "test_conflict_newer_wins_by_default",
    "test_dataverse_to_fno",
    "test_duplicated_notifications_apply_once",
    "test_fno_to_dataverse",
    "test_reordered_notifications_end_with_the_newest_state",
]


@pytest.fixture
def storage_backend() -> str:
    return "postgres"


async def test_the_bridge_runs_on_postgres_and_readyz_probes_its_state(env: Harness) -> None:
    assert isinstance(env.bridge.queue, PostgresQueue) and isinstance(env.bridge.state, PostgresState)
    ready = await env.ops("GET", "/readyz")
    assert ready.status == 200 and ready.body["state"] is True and ready.body["queue"] is True
