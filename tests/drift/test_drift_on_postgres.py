"""Drift checks through the running bridge (w-drift's tests/drift/test_drift_api.py) with the bridge's
state in PostgreSQL: each map's last check in a table (bridge/state/postgres_drift.py). The tests are
the SQLite ones, collected here again with ``storage_backend`` = "postgres"."""

from __future__ import annotations

import pytest

from bridge.state.postgres import PostgresState
from tests.drift.test_drift_api import test_drift_is_listed_checked_and_repaired_through_the_api, webhook_mode
from tests.e2e.harness import Harness
from tests.pg_support import pg_schemas

__all__ = ["pg_schemas", "test_drift_is_listed_checked_and_repaired_through_the_api", "webhook_mode"]


@pytest.fixture
def storage_backend() -> str:
    return "postgres"


async def test_the_drift_checks_are_kept_in_postgres(env: Harness) -> None:
    assert isinstance(env.bridge.state, PostgresState)
    assert await env.bridge.state.drift_checks() == []
