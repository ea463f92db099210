"""The contract suites' backends: every one the factories know, each test run against each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.queue.base import QueuePort
from bridge.queue.factory import NEEDS_A_SERVICE, QUEUE_BUILDERS, build_queue, open_queue
from bridge.settings import StorageSettings
from tests.contract.queue_support import QueueFactory


# Every backend but those that need a service not run here: the real Service Bus runs as
# "servicebus-fake" (bridge/queue/servicebus_fake.py), and live in tests/queue/test_servicebus_live.py.
@pytest.fixture(params=sorted(set(QUEUE_BUILDERS) - NEEDS_A_SERVICE))
async def make_queue(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[QueueFactory]:
    """``make(name, owner=...)``: a queue of the backend, opened as the composition root opens it
    (``open_queue``); the same ``name`` reaches the same storage again after ``close``."""
    opened: list[QueuePort] = []

    async def make(name: str, *, owner: str = "contract") -> QueuePort:
        queue = build_queue(request.param, StorageSettings(data_dir=tmp_path / name), owner=owner)
        await open_queue(queue)
        opened.append(queue)
        return queue

    yield make
    for queue in opened:
        await queue.close()
