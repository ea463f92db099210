"""The one place that chooses the queue backend: ``[queue] backend`` in the settings.

A new backend is one module implementing ``QueuePort`` plus one entry here (and its name in
``bridge.settings.QUEUE_BACKENDS``), and its run of the contract suite (tests/contract), which goes
through ``build_queue`` for every name in ``QUEUE_BUILDERS``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from bridge.core.errors import ConfigError
from bridge.queue.base import QueuePort, reclaiming
from bridge.queue.memory import MemoryQueue, MemoryQueueData
from bridge.queue.sqlite import SqliteQueue
from bridge.settings import QUEUE_BACKENDS, Settings, StorageSettings

log = logging.getLogger(__name__)

QueueBuilder = Callable[[StorageSettings, str], QueuePort]


def _sqlite(storage: StorageSettings, owner: str) -> QueuePort:
    return SqliteQueue(storage.data_dir / "queue.db", synchronous=storage.synchronous, owner=owner)


_MEMORY: dict[Path, MemoryQueueData] = {}


def _memory(storage: StorageSettings, owner: str) -> QueuePort:
    """The in-memory double (tests): one data set per data directory, for the life of the process."""
    data = _MEMORY.setdefault(storage.data_dir.resolve(), MemoryQueueData())
    return MemoryQueue(data, owner=owner)


# Every backend a queue can be built with. Settings accept QUEUE_BACKENDS; "memory" is the double.
QUEUE_BUILDERS: Mapping[str, QueueBuilder] = {"sqlite": _sqlite, "memory": _memory}


def build_queue(backend: str, storage: StorageSettings, *, owner: str) -> QueuePort:
    """The queue of ``backend``, not opened yet; its leases name ``owner``."""
    builder = QUEUE_BUILDERS.get(backend)
    if builder is None:
        raise ConfigError(
            f"unknown queue backend {backend!r}; accepted: {', '.join(QUEUE_BACKENDS)}", field="queue.backend"
        )
    return builder(storage, owner)


def create_queue(settings: Settings, *, owner: str) -> QueuePort:
    """The queue the settings choose (``[queue] backend``, ``[storage]``), not opened yet."""
    return build_queue(settings.queue.backend, settings.storage, owner=owner)


async def open_queue(queue: QueuePort) -> int:
    """Open ``queue`` and take back the leases its owner held before (a crash or kill of this
    bridge): they are handed out again at once instead of when they run out. Returns how many."""
    await queue.open()
    reclaim = reclaiming(queue)
    if reclaim is None:
        return 0
    taken = await reclaim.reclaim(reclaim.owner)
    if taken:
        log.warning(
            "took back %d change(s) this bridge was applying when it stopped (owner %s): applying them now",
            taken,
            reclaim.owner,
        )
    return taken
