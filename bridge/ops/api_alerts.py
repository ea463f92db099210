"""``/api/alerts``: list, create, change and delete the alert rules, kept in the state store.

How settings and stored rules combine: the ``[[alerts]]`` tables of the settings seed a state store
that has no rule set yet (the first start). From then on the store is the truth: rules created,
changed or deleted through this API survive restarts, and later edits of ``[[alerts]]`` in the file
do not replace them (the bridge logs that it kept the stored rules). Deleting every rule through the
API leaves a store with no rules, which stays so. docs/operations.md says the same.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bridge.core.events import utcnow
from bridge.engine.ports import Controller
from bridge.ops.alerts import EVERY_MAP, AlertRule, AlertRules, is_auto_pause
from bridge.ops.apikit import ApiError
from bridge.ops.apikit import body as _body
from bridge.ops.apikit import describe as _describe
from bridge.ops.apikit import ok as _ok
from bridge.ops.openapi import RouteSpec
from bridge.ops.watcher import recent_failures
from bridge.settings import AlertAction, AlertSettings
from bridge.state.base import MapStatus, StatePort

log = logging.getLogger(__name__)


class AlertRuleView(BaseModel):
    id: int
    map: str = Field(description='A map name, or "*" for every map')
    failures: int
    minutes: int
    action: AlertAction
    url: str | None = Field(description="The webhook's scheme and host only (its path is a secret)")
    recent_failures: dict[str, int] = Field(description="Per map it applies to: failures in its window now")


class AlertsView(BaseModel):
    rules: list[AlertRuleView]
    maps: list[str] = Field(description="Map names a rule may name (besides *)")
    paused_by_rule: list[str] = Field(description="Maps paused by a pause rule right now")


class AlertPatch(BaseModel):
    """Fields to change; omitted ones keep their value (a webhook keeps its URL)."""

    model_config = ConfigDict(extra="forbid")

    map: str | None = None
    failures: int | None = None
    minutes: int | None = None
    action: AlertAction | None = None
    url: str | None = None


class AlertDeleted(BaseModel):
    id: int
    deleted: bool


async def load_alert_rules(state: StatePort, alerts: AlertRules, seed: Sequence[AlertSettings]) -> None:
    """At start: seed an empty store from the settings, then put the stored rules in force."""
    seeded = await state.seed_alert_rules([AlertRule(**r.model_dump()).stored() for r in seed])
    rules = [AlertRule.of(r) for r in await state.alert_rules() or []]
    alerts.replace(rules)
    if not seeded:
        same = [r.model_dump(exclude={"id"}) for r in rules] == [s.model_dump() for s in seed]
        if not same:
            log.info(
                "alert rules: %d kept from the state store (changed through /api/alerts); the [[alerts]] "
                "settings only seed an empty store",
                len(rules),
            )


class AlertsApi:
    def __init__(self, *, controller: Controller, state: StatePort, alerts: AlertRules) -> None:
        self.controller = controller
        self.state = state
        self.alerts = alerts

    async def _reload(self) -> None:
        self.alerts.replace([AlertRule.of(r) for r in await self.state.alert_rules() or []])

    def _check_map(self, name: str) -> None:
        if name != EVERY_MAP and name not in self.controller.map_names():
            maps = ", ".join(sorted(self.controller.map_names()))
            raise ApiError(400, "bad_request", f"map: no map named {name!r}; maps: {maps} (or * for all)")

    async def _view(self, rule: AlertRule, now: datetime) -> AlertRuleView:
        assert rule.id is not None
        maps = [m for m in sorted(self.controller.map_names()) if rule.applies_to(m)]
        recent = {m: (await recent_failures(self.state, self.alerts, m, now, rule))[0] for m in maps}
        shown = rule.redacted()
        return AlertRuleView(
            id=rule.id,
            map=rule.map,
            failures=rule.failures,
            minutes=rule.minutes,
            action=rule.action,
            url=shown.url,
            recent_failures=recent,
        )

    def _id(self, request: web.Request) -> int:
        raw = request.match_info["rule_id"]
        if not raw.isdigit():
            raise ApiError(400, "bad_request", f"alert rule id must be a positive integer, not {raw!r}")
        return int(raw)

    async def list_alerts(self, request: web.Request) -> web.Response:
        now = utcnow()
        paused = []
        for name in sorted(self.controller.map_names()):
            state = await self.state.get_map_state(name)
            if state.status is MapStatus.PAUSED and is_auto_pause(state.reason):
                paused.append(name)
        views = [await self._view(r, now) for r in self.alerts.all()]
        maps = sorted(self.controller.map_names())
        return _ok(AlertsView(rules=views, maps=maps, paused_by_rule=paused))

    async def create_alert(self, request: web.Request) -> web.Response:
        body = await _body(request, AlertSettings)
        self._check_map(body.map)
        rid = await self.state.put_alert_rule(AlertRule(**body.model_dump()).stored())
        assert rid is not None
        await self._reload()
        log.info("alert rule %d created: %s %s", rid, body.map, body.action.value)
        rule = self.alerts.get(rid)
        assert rule is not None
        return _ok(await self._view(rule, utcnow()))

    async def update_alert(self, request: web.Request) -> web.Response:
        rid = self._id(request)
        patch = await _body(request, AlertPatch)
        current = self.alerts.get(rid)
        if current is None:
            raise ApiError(404, "not_found", f"no alert rule {rid}")
        merged: dict[str, Any] = current.model_dump(exclude={"id"})
        merged.update(patch.model_dump(exclude_unset=True))
        try:
            changed = AlertSettings.model_validate(merged)
        except ValidationError as exc:
            raise ApiError(400, "bad_request", _describe(exc)) from None
        self._check_map(changed.map)
        if await self.state.put_alert_rule(AlertRule(**changed.model_dump(), id=rid).stored()) is None:
            raise ApiError(404, "not_found", f"no alert rule {rid}")
        await self._reload()
        log.info("alert rule %d changed: %s %s", rid, changed.map, changed.action.value)
        rule = self.alerts.get(rid)
        assert rule is not None
        return _ok(await self._view(rule, utcnow()))

    async def delete_alert(self, request: web.Request) -> web.Response:
        rid = self._id(request)
        if not await self.state.delete_alert_rule(rid):
            raise ApiError(404, "not_found", f"no alert rule {rid}")
        await self._reload()
        log.info("alert rule %d deleted", rid)
        return _ok(AlertDeleted(id=rid, deleted=True))

    def specs(self) -> list[RouteSpec]:
        nf = {404: "No such alert rule"}
        return [
            RouteSpec(
                "GET", "/api/alerts", self.list_alerts, "Alert rules in force", AlertsView, tag="alerts"
            ),
            RouteSpec(
                "POST",
                "/api/alerts",
                self.create_alert,
                "Add an alert rule (kept in the state store)",
                AlertRuleView,
                tag="alerts",
                body=AlertSettings,
                description="Several rules per map are fine. action pause | webhook (url needed) | log.",
            ),
            RouteSpec(
                "PUT",
                "/api/alerts/{rule_id}",
                self.update_alert,
                "Change an alert rule (omitted fields keep their value)",
                AlertRuleView,
                tag="alerts",
                body=AlertPatch,
                errors=nf,
            ),
            RouteSpec(
                "DELETE",
                "/api/alerts/{rule_id}",
                self.delete_alert,
                "Delete an alert rule",
                AlertDeleted,
                tag="alerts",
                errors=nf,
            ),
        ]
