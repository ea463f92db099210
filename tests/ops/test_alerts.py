"""Alert rules: the pure decision, and the watcher that pauses a map through the Controller."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from bridge.ops.alerts import AlertRule, AlertRules, is_auto_pause, reason_text
from bridge.state.base import MapState, MapStatus
from tests.ops.conftest import BEARER, Ops
from tests.ops.helpers import event, failures

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def test_default_rule_is_ten_in_fifteen_minutes() -> None:
    rules = AlertRules()

    assert rules.evaluate("warehouse", 9).pause is False
    decision = rules.evaluate("warehouse", 10, "Site 9 does not exist")
    assert decision.pause is True and decision.rule == AlertRule(failures=10, minutes=15)
    assert decision.reason == (
        "Paused automatically: 10 failures in the last 15 min (alert rule: 10 in 15 min). "
        "Fix the cause, then resume. Last error: Site 9 does not exist"
    )
    assert is_auto_pause(decision.reason) and not is_auto_pause("paused by admin") and not is_auto_pause(None)


def test_rules_are_per_map() -> None:
    rules = AlertRules(overrides={"asset": AlertRule(failures=2, minutes=5)})

    assert rules.evaluate("asset", 2).pause and not rules.evaluate("warehouse", 2).pause
    assert rules.is_custom("asset") and not rules.is_custom("warehouse")
    rules.reset("asset")
    assert not rules.evaluate("asset", 2).pause


def test_window_starts_m_minutes_ago_but_not_before_the_last_resume() -> None:
    rules = AlertRules(default=AlertRule(failures=3, minutes=15))

    assert rules.window_start("asset", NOW) == NOW - timedelta(minutes=15)
    assert rules.window_start("asset", NOW, NOW - timedelta(hours=1)) == NOW - timedelta(minutes=15)
    assert rules.window_start("asset", NOW, NOW - timedelta(minutes=2)) == NOW - timedelta(minutes=2)


@pytest.mark.parametrize("bad", [{"failures": 0}, {"minutes": 0}, {"failures": -1}, {"minutes": 100_000}])
def test_rule_bounds(bad: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        AlertRule.model_validate(bad)


def test_reason_text_without_last_error() -> None:
    assert reason_text(3, AlertRule(failures=3, minutes=1)).endswith("Fix the cause, then resume.")


async def test_watcher_pauses_a_map_when_its_rule_is_reached(ops: Ops) -> None:
    await failures(ops.state, 9)
    ops.metrics.failed("warehouse", "cds->scm", "rejected", "Site 9 does not exist")
    below = await ops.watcher.check("warehouse")
    await failures(ops.state, 1)

    decision = await ops.watcher.check("warehouse")

    assert below.pause is False and decision.pause is True
    [(call, (entity, reason))] = ops.controller.calls
    assert (call, entity) == ("pause", "warehouse") and reason == decision.reason
    view = await (await ops.client.get("/api/maps/warehouse", headers=BEARER)).json()
    assert (view["state"], view["paused_by_rule"]) == ("paused", True)
    assert "10 failures in the last 15 min" in view["reason"] and "Site 9 does not exist" in view["reason"]
    alerts = await (await ops.client.get("/api/alerts", headers=BEARER)).json()
    assert next(m for m in alerts["maps"] if m["entity"] == "warehouse")["paused_by_rule"] is True


async def test_conflicts_resolved_by_policy_and_parked_backlog_do_not_pause_a_map(ops: Ops) -> None:
    # Both sides editing the same records makes conflicts by design; they are shown, not alarming.
    await failures(ops.state, 10, kind="conflict")
    await failures(ops.state, 10, kind="skipped-on-resume")
    assert (await ops.watcher.check("warehouse")).pause is False
    await failures(ops.state, 10, kind="rejected")
    assert (await ops.watcher.check("warehouse")).pause is True  # real failures still count


async def test_watcher_ignores_failures_outside_the_window(ops: Ops) -> None:
    await failures(ops.state, 10, age=timedelta(minutes=16))

    decision = await ops.watcher.check("warehouse")

    assert decision.pause is False and ops.controller.calls == []


async def test_resume_starts_a_new_window(ops: Ops) -> None:
    await failures(ops.state, 10, age=timedelta(seconds=5))
    await ops.watcher.check("warehouse")
    await ops.client.post("/api/maps/warehouse/resume", json={"mode": "catch-up"}, headers=BEARER)

    again = await ops.watcher.check("warehouse")

    assert again.pause is False and again.failures == 0
    assert [c[0] for c in ops.controller.calls] == ["pause", "resume"]


async def test_a_paused_map_is_not_paused_again(ops: Ops) -> None:
    await ops.state.set_map_state(MapState("warehouse", MapStatus.PAUSED, "paused by admin"))
    await failures(ops.state, 10)

    await ops.watcher.check_all()

    assert ops.controller.calls == []
    assert (await ops.state.get_map_state("warehouse")).reason == "paused by admin"


async def test_rule_set_through_the_api_drives_the_pause(ops: Ops) -> None:
    await ops.client.put("/api/alerts/asset", json={"failures": 2, "minutes": 5}, headers=BEARER)
    await failures(ops.state, 2, entity="asset")

    await ops.watcher.check_all()

    assert [(c[0], c[1][0]) for c in ops.controller.calls] == [("pause", "asset")]
    assert "alert rule: 2 in 5 min" in (await ops.state.get_map_state("asset")).reason  # type: ignore[operator]


async def test_watcher_samples_queue_depth_and_lag(ops: Ops) -> None:
    await ops.queue.enqueue(event(key="1"))

    await ops.watcher.sample()

    snap = ops.metrics.snapshot("warehouse")
    assert snap.depth == 1 and snap.lag_s is not None and snap.lag_s >= 0
    assert ops.metrics.snapshot("asset").lag_s is None
