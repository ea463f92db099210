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
from bridge.state.base import UNRESOLVED, ActivityCategory, ActivityKind, MapStatus, StatePort

log = logging.getLogger(__name__)

# Recorded for admins to see, but no sign that the map is failing: a conflict resolved by its policy,
# and the backlog an admin chose to park when resuming ("skip to live, keep the backlog").
NOT_MALFUNCTIONS = ("conflict", "skipped-on-resume")
ALERT_ACTOR = "alert rule"  # who acted, in the activity log, when a rule pauses a map


async def recent_failures(
    state: StatePort, alerts: AlertRules, entity: str, now: datetime
) -> tuple[int, MapStatus, str | None]:
    """Unresolved failures the alert rule counts now (window since the last resume), with the map's
    state. Resolved and discarded failures do not count: they leave the banner and Failing."""
    map_state = await state.get_map_state(entity)
    resumed_at = map_state.changed_at if map_state.status is MapStatus.RUNNING else None
    since = alerts.window_start(entity, now, resumed_at)
    count = await state.count_failures(
        entity=entity, since=since, exclude_kinds=NOT_MALFUNCTIONS, states=UNRESOLVED
    )
    return count, map_state.status, map_state.reason


# ---- the derived Failing state (issue 20): never stored, decided here from what is --------------


async def last_apply_failed(state: StatePort, entity: str) -> bool:
    """The map's newest unresolved failure (a malfunction) is newer than its newest applied change."""
    unresolved = await state.failures(entity=entity, states=UNRESOLVED, limit=len(NOT_MALFUNCTIONS) + 1)
    newest = next((f for f in unresolved if f.kind not in NOT_MALFUNCTIONS), None)
    if newest is None or newest.occurred_at is None:
        return False
    applied = await state.activity(entity=entity, category=ActivityCategory.CHANGE, limit=1)
    return not applied or applied[0].at is None or applied[0].at < newest.occurred_at


def is_failing(status: MapStatus, unresolved_recent: int, threshold: int, last_failed: bool) -> bool:
    """Failing: a running map whose unresolved failures in the alert window reach its rule's
    threshold, or whose last apply failed. A paused or stopped map shows that state instead."""
    return status is MapStatus.RUNNING and (unresolved_recent >= threshold or last_failed)


async def failing_now(state: StatePort, alerts: AlertRules, entity: str, now: datetime) -> tuple[int, bool]:
    """The map's unresolved recent failures, and whether it is Failing."""
    recent, status, _ = await recent_failures(state, alerts, entity, now)
    if status is not MapStatus.RUNNING:
        return recent, False
    threshold = alerts.rule_for(entity).failures
    failed = recent > 0 and await last_apply_failed(state, entity)
    return recent, is_failing(status, recent, threshold, failed)


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
                await self._controller.note(
                    entity, ActivityKind.ALERT_FIRED, decision.reason, actor=ALERT_ACTOR
                )
                await self._controller.pause(entity, decision.reason, actor=ALERT_ACTOR)
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
