"""The ops background job: samples queue figures into Metrics and enforces the alert rules.

Runs every ``interval`` seconds inside the bridge (an aiohttp cleanup context). The writer may also
call ``check(entity)`` right after recording a failure, so a rule pauses a map without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from aiohttp import web

from bridge.core.events import utcnow
from bridge.engine.ports import Controller
from bridge.metrics import Metrics
from bridge.ops.alerts import AlertDecision, AlertRules
from bridge.queue.base import QueuePort
from bridge.state.base import MapStatus, StatePort

log = logging.getLogger(__name__)

# Recorded for admins to see, but no sign that the map is failing: a conflict resolved by its policy,
# and the backlog an admin chose to park when resuming ("skip to live, keep the backlog").
NOT_MALFUNCTIONS = ("conflict", "skipped-on-resume")


async def recent_failures(
    state: StatePort, alerts: AlertRules, entity: str, now: datetime
) -> tuple[int, MapStatus, str | None]:
    """Failures the alert rule counts now (window since the last resume), with the map's state."""
    map_state = await state.get_map_state(entity)
    resumed_at = map_state.changed_at if map_state.status is MapStatus.RUNNING else None
    since = alerts.window_start(entity, now, resumed_at)
    count = await state.count_failures(entity=entity, since=since, exclude_kinds=NOT_MALFUNCTIONS)
    return count, map_state.status, map_state.reason


class OpsWatcher:
    def __init__(
        self,
        *,
        controller: Controller,
        queue: QueuePort,
        state: StatePort,
        metrics: Metrics,
        alerts: AlertRules,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._controller = controller
        self._queue = queue
        self._state = state
        self._metrics = metrics
        self._alerts = alerts
        self._clock = clock
        self._lock = asyncio.Lock()  # the loop and the writer's check() must not pause twice

    async def sample(self) -> None:
        now = self._clock()
        for entity in self._controller.map_names():
            self._metrics.sample_depth(entity, await self._queue.depth(entity))
            oldest = await self._queue.oldest_enqueued_at(entity)
            self._metrics.sample_lag(entity, (now - oldest).total_seconds() if oldest else None)

    async def check(self, entity: str) -> AlertDecision:
        """Pause ``entity`` through the Controller when its alert rule is reached."""
        async with self._lock:
            count, status, _ = await recent_failures(self._state, self._alerts, entity, self._clock())
            last = self._metrics.snapshot(entity).last_error
            decision = self._alerts.evaluate(entity, count, last.message if last else None)
            if decision.reason is not None and status is MapStatus.RUNNING:
                log.warning("alert rule pauses map %s: %s", entity, decision.reason)
                await self._controller.pause(entity, decision.reason)
            return decision

    async def check_all(self) -> None:
        for entity in self._controller.map_names():
            await self.check(entity)

    async def run(self, interval: float) -> None:
        while True:
            try:
                await self.sample()
                await self.check_all()
            except asyncio.CancelledError:
                raise
            except Exception:  # the next round tries again; an ops job must never stop the bridge
                log.exception("ops watcher round failed")
            await asyncio.sleep(interval)

    def cleanup_ctx(self, interval: float = 2.0) -> Callable[[web.Application], AsyncIterator[None]]:
        async def _ctx(app: web.Application) -> AsyncIterator[None]:
            task = asyncio.create_task(self.run(interval), name="dualwrite-ops-watcher")
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        return _ctx
