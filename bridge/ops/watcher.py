"""The ops background job: samples queue figures into Metrics and enforces the alert rules.

Each rule of a map is evaluated on its own window; a rule fires at most once per N failures (after
firing, it counts again from then), so a webhook or log rule does not repeat every round.

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
from bridge.ops.alerts import AlertDecision, AlertRule, AlertRules, redacted_url
from bridge.ops.notify import Notify, WebhookNotifier
from bridge.queue.base import QueuePort, map_figures
from bridge.settings import AlertAction
from bridge.state.base import UNRESOLVED, ActivityCategory, ActivityKind, MapStatus, StatePort

log = logging.getLogger(__name__)

# Recorded for admins to see, but no sign that the map is failing: a conflict resolved by its policy,
# and the backlog an admin chose to park when resuming ("skip to live, keep the backlog").
NOT_MALFUNCTIONS = ("conflict", "skipped-on-resume")
ALERT_ACTOR = "alert rule"  # who acted, in the activity log, when a rule pauses a map


async def recent_failures(
    state: StatePort,
    alerts: AlertRules,
    entity: str,
    now: datetime,
    rule: AlertRule | None = None,
    not_before: datetime | None = None,
) -> tuple[int, MapStatus, str | None]:
    """Unresolved failures an alert rule (the map's card rule by default) counts now (its window
    since the last resume, and since ``not_before``), with the map's state. Resolved and discarded
    failures do not count: they leave the banner and Failing."""
    map_state = await state.get_map_state(entity)
    resumed_at = map_state.changed_at if map_state.status is MapStatus.RUNNING else None
    since = alerts.window_start(entity, now, resumed_at, rule)
    if not_before is not None:
        since = max(since, not_before)
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
        notify: Notify | None = None,
    ) -> None:
        self._controller = controller
        self._queue = queue
        self._state = state
        self._metrics = metrics
        self._alerts = alerts
        self._clock = clock
        self._lock = asyncio.Lock()  # the loop and the writer's check() must not pause twice
        self._own_notifier: WebhookNotifier | None = None  # closed with the watcher
        if notify is None:
            self._own_notifier = notify = WebhookNotifier()
        self._notify: Notify = notify
        self._deliveries: set[asyncio.Task[bool]] = set()  # webhook posts under way
        self._fired: dict[tuple[int | None, str], datetime] = {}  # (rule id, map) -> last firing

    async def sample(self) -> None:
        now = self._clock()
        for entity in self._controller.map_names():
            depth, oldest = await map_figures(self._queue, entity)
            if depth is not None:
                self._metrics.sample_depth(entity, depth)
            self._metrics.sample_lag(entity, (now - oldest).total_seconds() if oldest else None)

    async def check(self, entity: str) -> list[AlertDecision]:
        """Evaluate every rule of ``entity`` and act on those reached: pause it through the
        Controller, post to a webhook, or log at ERROR level."""
        async with self._lock:
            decisions = []
            for rule in self._alerts.rules_for(entity):
                decisions.append(await self._check_rule(entity, rule))
            return decisions

    async def _check_rule(self, entity: str, rule: AlertRule) -> AlertDecision:
        now = self._clock()
        fired = self._fired.get((rule.id, entity))
        count, status, _ = await recent_failures(self._state, self._alerts, entity, now, rule, fired)
        last = self._metrics.snapshot(entity).last_error
        decision = self._alerts.evaluate(entity, count, last.message if last else None, rule)
        if decision.reason is None:
            return decision
        if rule.action is AlertAction.PAUSE:
            if status is MapStatus.RUNNING:
                log.warning("alert rule %s pauses map %s: %s", rule.id, entity, decision.reason)
                await self._controller.note(
                    entity, ActivityKind.ALERT_FIRED, decision.reason, actor=ALERT_ACTOR
                )
                await self._controller.pause(entity, decision.reason, actor=ALERT_ACTOR)
            return decision
        self._fired[(rule.id, entity)] = now
        await self._controller.note(entity, ActivityKind.ALERT_FIRED, decision.reason, actor=ALERT_ACTOR)
        if rule.action is AlertAction.LOG:
            log.error("alert rule %s: %s", rule.id, decision.reason)
        elif rule.url is not None:
            log.warning("alert rule %s notifies %s: %s", rule.id, redacted_url(rule.url), decision.reason)
            # In the background: a slow webhook must not hold up the other rules (a pause above all).
            task = asyncio.create_task(
                self._notify(rule.url, decision.reason), name="dualwrite-alert-webhook"
            )
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)
        return decision

    async def delivered(self) -> None:
        """Wait for the alert webhook posts under way (each ends within its timeout)."""
        if self._deliveries:
            await asyncio.gather(*self._deliveries, return_exceptions=True)

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
            await self.delivered()
            if self._own_notifier is not None:
                await self._own_notifier.close()

        return _ctx
