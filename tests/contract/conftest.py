"""The contract suites' backends: every one the factories know, each test run against each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.queue.base import QueuePort
from bridge.queue.factory import NEEDS_A_SERVICE, QUEUE_BUILDERS, build_queue, open_queue
from bridge.settings import StorageSettings
from bridge.state.base import StatePort
from bridge.state.factory import STATE_BUILDERS
from tests.contract.queue_support import QueueFactory
from tests.contract.test_state_contract import StateFactory
from tests.pg_support import contract_state, pg_schemas, pg_settings, require_pg

__all__ = ["make_queue", "make_state", "pg_schemas"]


# Every backend but those that need a service not run here: the real Service Bus runs as
# "servicebus-fake" (bridge/queue/servicebus_fake.py), and live in tests/queue/test_servicebus_live.py.
# "postgres" runs for real on the server at 127.0.0.1:5432 (tests/pg_support.py), in schemas of its own.
@pytest.fixture(params=sorted(set(QUEUE_BUILDERS) - NEEDS_A_SERVICE))
async def make_queue(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[QueueFactory]:
    """``make(name, owner=...)``: a queue of the backend, opened as the composition root opens it
    (``open_queue``); the same ``name`` reaches the same storage again after ``close``."""
    opened: list[QueuePort] = []
    schema = None
    if request.param == "postgres":
        require_pg()
        schema = request.getfixturevalue("pg_schemas")

    async def make(name: str, *, owner: str = "contract") -> QueuePort:
        storage = StorageSettings(data_dir=tmp_path / name)
        settings = None if schema is None else pg_settings(schema(name), tmp_path / name)
        queue = build_queue(request.param, storage, owner=owner, settings=settings)
        await open_queue(queue)
        opened.append(queue)
        return queue

    yield make
    for queue in opened:
        await queue.close()


@pytest.fixture(params=sorted(STATE_BUILDERS))
async def make_state(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateFactory]:
    """Opens state stores of one backend (each test runs once per backend); closes them after."""
    opened: list[StatePort] = []

    async def make(name: str) -> StatePort:
        state = contract_state(request, tmp_path / name, name)
        await state.open()
        opened.append(state)
        return state

    yield make
    for state in opened:
        await state.close()
