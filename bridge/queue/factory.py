"""The one place that chooses the queue backend: ``[queue] backend`` in the settings.

A new backend is one module implementing ``QueuePort`` plus one entry here (and its name in
``bridge.settings.QUEUE_BACKENDS``), and its run of the contract suite (tests/contract), which goes
through ``build_queue`` for every name in ``QUEUE_BUILDERS`` (but ``NEEDS_A_SERVICE``: the real Service
Bus runs as ``servicebus-fake`` there, and live in tests/queue/test_servicebus_live.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from azure.core.credentials_async import AsyncTokenCredential
from azure.servicebus.aio import ServiceBusClient
from azure.servicebus.aio.management import ServiceBusAdministrationClient

from bridge.core.errors import ConfigError
from bridge.queue.base import QueuePort, reclaiming
from bridge.queue.memory import MemoryQueue, MemoryQueueData
from bridge.queue.servicebus import ServiceBusQueue
from bridge.queue.servicebus_fake import FakeAdministrationClient, FakeNamespace, FakeServiceBusClient
from bridge.queue.sqlite import SqliteQueue
from bridge.settings import QUEUE_BACKENDS, Settings, StorageSettings
from bridge.storage.pgconfig import PgOptions, missing_extra

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueInputs:
    """What a builder may use: the storage, the lease owner, and for a remote queue the settings (its
    ``[queue]`` section and secrets) and an Entra token credential the composition root built."""

    storage: StorageSettings
    owner: str
    settings: Settings | None = None
    credential: AsyncTokenCredential | None = None


QueueBuilder = Callable[[QueueInputs], QueuePort]


def _sqlite(inputs: QueueInputs) -> QueuePort:
    storage = inputs.storage
    return SqliteQueue(storage.data_dir / "queue.db", synchronous=storage.synchronous, owner=inputs.owner)


_MEMORY: dict[Path, MemoryQueueData] = {}


def _memory(inputs: QueueInputs) -> QueuePort:
    """The in-memory double (tests): one data set per data directory, for the life of the process."""
    data = _MEMORY.setdefault(inputs.storage.data_dir.resolve(), MemoryQueueData())
    return MemoryQueue(data, owner=inputs.owner)


def _servicebus(inputs: QueueInputs) -> QueuePort:
    """The real Service Bus: the connection string (a secret, environment only, never logged), else the
    namespace with the credential the composition root passed in."""
    settings = inputs.settings
    if settings is None:
        raise ConfigError("the servicebus queue is built from the settings", field="queue.backend")
    name = settings.queue.servicebus_queue
    secret = settings.servicebus_connection_string.get_secret_value()
    namespace = settings.queue.servicebus_namespace
    if secret:
        client = ServiceBusClient.from_connection_string(secret)
        admin = ServiceBusAdministrationClient.from_connection_string(secret)
    elif namespace and inputs.credential is not None:
        client = ServiceBusClient(namespace, inputs.credential)
        admin = ServiceBusAdministrationClient(namespace, inputs.credential)
    elif namespace:
        raise ConfigError(
            "queue.servicebus_namespace needs an Entra credential, which this program does not build: "
            "set DUALWRITE_SERVICEBUS_CONNECTION_STRING instead",
            field="queue.servicebus_namespace",
        )
    else:
        raise ConfigError(
            'queue.backend = "servicebus" needs DUALWRITE_SERVICEBUS_CONNECTION_STRING in the environment '
            "(or queue.servicebus_namespace with an Entra credential)",
            field="queue.backend",
        )
    return ServiceBusQueue(client, name, admin=admin, owner=inputs.owner)


def _postgres(inputs: QueueInputs) -> QueuePort:
    """Tables in ``[database] schema`` of ``DUALWRITE_DATABASE_URL`` (a secret, never logged)."""
    settings = inputs.settings
    if settings is None:
        raise ConfigError("the postgres queue is built from the settings", field="queue.backend")
    try:  # psycopg only when chosen: the postgres extra
        from bridge.queue.postgres import PostgresQueue
    except ModuleNotFoundError as exc:
        raise missing_extra(exc, "queue.backend") from exc
    db = settings.database
    return PostgresQueue(
        settings.database_url.get_secret_value(),
        schema=db.db_schema,
        owner=inputs.owner,
        options=PgOptions(db.pool_min, db.pool_max, db.synchronous_commit),
    )


_FAKE_NAMESPACES: dict[Path, FakeNamespace] = {}


def _servicebus_fake(inputs: QueueInputs) -> QueuePort:
    """The Service Bus queue on the SDK-level fake (tests): one namespace per data directory, for the
    life of the process, with the broker settings deploy/ gives the real queue."""
    key = inputs.storage.data_dir.resolve()
    namespace = _FAKE_NAMESPACES.get(key)
    if namespace is None:
        namespace = _FAKE_NAMESPACES[key] = FakeNamespace()
        namespace.create_queue("dualwrite", lock_duration_s=60.0, max_delivery_count=10)
    return ServiceBusQueue(
        FakeServiceBusClient(namespace),
        "dualwrite",
        admin=FakeAdministrationClient(namespace),
        owner=inputs.owner,
        accept_wait_s=0.01,
    )


# Every backend a queue can be built with. Settings accept QUEUE_BACKENDS; "memory" and
# "servicebus-fake" are the doubles.
QUEUE_BUILDERS: Mapping[str, QueueBuilder] = {
    "sqlite": _sqlite,
    "memory": _memory,
    "postgres": _postgres,
    "servicebus": _servicebus,
    "servicebus-fake": _servicebus_fake,
}
# Backends that need a service this machine does not run (the contract suite runs their fakes).
NEEDS_A_SERVICE = frozenset({"servicebus"})


def build_queue(
    backend: str,
    storage: StorageSettings,
    *,
    owner: str,
    settings: Settings | None = None,
    credential: AsyncTokenCredential | None = None,
) -> QueuePort:
    """The queue of ``backend``, not opened yet; its leases name ``owner``."""
    builder = QUEUE_BUILDERS.get(backend)
    if builder is None:
        raise ConfigError(
            f"unknown queue backend {backend!r}; accepted: {', '.join(QUEUE_BACKENDS)}", field="queue.backend"
        )
    return builder(QueueInputs(storage, owner, settings, credential))


def create_queue(
    settings: Settings, *, owner: str, credential: AsyncTokenCredential | None = None
) -> QueuePort:
    """The queue the settings choose (``[queue] backend``, ``[storage]``), not opened yet;
    ``credential``: an Entra token credential for ``[queue] servicebus_namespace``."""
    return build_queue(
        settings.queue.backend, settings.storage, owner=owner, settings=settings, credential=credential
    )


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
