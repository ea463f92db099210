"""Sync runs put together: inside the bridge (``InitialService``, behind ``/api/sync/initial``) or in
a process of their own when no bridge runs (``run_standalone``), on the same state store.

Inside the bridge a map goes through the controller (``initializing``, then started): its live
changes queue, held, meanwhile, and what queued is applied once the map runs again. In a process of
its own the map states are written to the store directly, so a bridge started afterwards finds them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge.core.mapping import MappingSet, load_mappings
from bridge.engine.control import EngineController
from bridge.engine.initial import InitialSync
from bridge.engine.syncports import InitialRequest, SyncBusyError
from bridge.engine.syncprogress import RunProgress
from bridge.queue.base import QueueCapability, QueuePort
from bridge.queue.factory import create_queue, open_queue
from bridge.settings import Settings, load_settings
from bridge.state.base import MapState, MapStatus, StatePort, sync_store
from bridge.state.factory import create_state
from bridge.storage.owner import owner_id
from bridge.systems.bulk import BulkSystems
from bridge.systems.connect import Systems, connect_systems

log = logging.getLogger(__name__)


def run_settings(config: Path | None, **overrides: Any) -> Settings:
    """The settings of a command that talks to the systems (``sync …``): one place, so another
    source of settings (a sandbox's info file) is added here once for all of them."""
    return load_settings(config, **overrides)


class ControllerGate:
    """Map states through the running bridge's controller (held queue, activity log)."""

    def __init__(self, controller: EngineController) -> None:
        self.controller = controller

    async def initializing(self, entity: str, reason: str) -> None:
        await self.controller.initializing(entity, reason, actor="initial sync")

    async def running(self, entity: str) -> None:
        await self.controller.start(entity, actor="initial sync")


class StoreGate:
    """Map states written to the store (no bridge runs: nothing is queued meanwhile)."""

    def __init__(self, state: StatePort) -> None:
        self.state = state

    async def initializing(self, entity: str, reason: str) -> None:
        await self.state.set_map_state(MapState(entity, MapStatus.INITIALIZING, reason, datetime.now(UTC)))

    async def running(self, entity: str) -> None:
        await self.state.set_map_state(MapState(entity, MapStatus.RUNNING, None, datetime.now(UTC)))


class QueuedChanges:
    """``HeldChanges`` over the queue: asks per record only when the map has anything queued."""

    def __init__(self, queue: QueuePort) -> None:
        self.queue = queue

    async def held(self, entity: str, record_keys: Sequence[str]) -> set[str]:
        wanted = {QueueCapability.MAP_FIGURES, QueueCapability.RECORD_VIEW}
        if not wanted <= self.queue.capabilities:
            # Service Bus cannot show one record's events: the run relies on If-Match and on the
            # ledger's dates alone (a change made during the run is still applied after it).
            return set()
        if await self.queue.depth(entity) == 0:
            return set()
        found = await asyncio.gather(*(self.queue.pending_of(k) for k in record_keys))
        return {k for k, events in zip(record_keys, found, strict=True) if events}


def bulk_systems(settings: Settings, systems: Systems, mappings: MappingSet) -> BulkSystems:
    initial = settings.initial
    return BulkSystems(
        systems.cds, systems.scm, mappings, batch_size=initial.batch_size, page_size=initial.page_size
    )


class InitialService:
    """The bridge's one initial sync at a time (``InitialSyncService`` of the operations API)."""

    def __init__(
        self,
        *,
        settings: Settings,
        mappings: MappingSet,
        state: StatePort,
        systems: Systems,
        controller: EngineController,
        queue: QueuePort,
    ) -> None:
        self.sync = InitialSync(
            mappings=mappings,
            state=state,
            store=sync_store(state),
            systems=bulk_systems(settings, systems, mappings),
            gate=ControllerGate(controller),
            live=QueuedChanges(queue),
            planned_limit=settings.initial.planned_limit,
        )
        self._task: asyncio.Task[RunProgress] | None = None

    async def start(self, request: InitialRequest) -> dict[str, Any]:
        if self._task is not None and not self._task.done():
            raise SyncBusyError("an initial sync is running; follow it with GET /api/sync/initial")
        run_id, steps = await self.sync.prepare(request)
        self._task = asyncio.create_task(self._run(request, run_id, steps))
        await asyncio.sleep(0)  # let it set up its figures
        snapshot = self.progress()
        assert snapshot is not None
        return snapshot

    async def _run(self, request: InitialRequest, run_id: int, steps: Any) -> RunProgress:
        try:
            return await self.sync.run(request, run_id, steps)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("initial sync run %d failed", run_id)
            raise

    def progress(self) -> dict[str, Any] | None:
        return None if self.sync.progress is None else self.sync.progress.snapshot()

    async def stop(self) -> None:
        """The bridge stops: the run stops after its last checkpoint and resumes on the next start."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except BaseException:  # cancelled, or its own failure (logged)
                log.info("initial sync stopped with the bridge; it resumes where it stopped")


async def run_standalone(
    settings: Settings,
    request: InitialRequest,
    *,
    on_progress: Callable[[RunProgress], None] | None = None,
    every_s: float = 0.5,
) -> RunProgress:
    """The run in this process, on the bridge's state store (no bridge runs)."""
    mappings = load_mappings(settings.mappings_dir)
    secret = settings.client_secret.get_secret_value()
    systems = connect_systems(settings, secret)
    settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
    state = create_state(settings)
    queue = create_queue(settings, owner=owner_id(settings.storage.data_dir))
    await state.open()
    await open_queue(queue)  # what it holds for a map (queued before) is left to live sync
    try:
        sync = InitialSync(
            mappings=mappings,
            state=state,
            store=sync_store(state),
            systems=bulk_systems(settings, systems, mappings),
            gate=StoreGate(state),
            live=QueuedChanges(queue),
            planned_limit=settings.initial.planned_limit,
        )
        run_id, steps = await sync.prepare(request)
        task = asyncio.create_task(sync.run(request, run_id, steps))
        while not task.done():
            await asyncio.wait({task}, timeout=every_s)
            if on_progress is not None and sync.progress is not None:
                on_progress(sync.progress)
        return task.result()
    finally:
        await systems.close()
        await queue.close()
        await state.close()
