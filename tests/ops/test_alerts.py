"""Alert rules: the pure decisions, and the watcher acting on them (pause, webhook, log)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import ValidationError

from bridge.ops.alerts import AlertRule, AlertRules, is_auto_pause, reason_text, redacted_url
from bridge.ops.notify import WebhookNotifier
from bridge.ops.watcher import OpsWatcher
from bridge.settings import AlertAction
from bridge.state.base import MapState, MapStatus
from tests.ops.conftest import BEARER, Ops
from tests.ops.helpers import event, failures

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def test_default_rule_pauses_any_map_after_ten_in_fifteen_minutes() -> None:
    rules = AlertRules()

    assert rules.evaluate("warehouse", 9).pause is False
    decision = rules.evaluate("warehouse", 10, "Site 9 does not exist")
    assert decision.pause is True and decision.rule == AlertRule(failures=10, minutes=15)
    assert decision.rule.map == "*" and decision.rule.action is AlertAction.PAUSE
    assert decision.reason == (
        "Paused automatically: 10 failures in the last 15 min (alert rule: 10 in 15 min). "
        "Fix the cause, then resume. Last error: Site 9 does not exist"
    )
    assert is_auto_pause(decision.reason) and not is_auto_pause("paused by admin") and not is_auto_pause(None)


def test_several_rules_per_map_its_own_first_then_every_maps() -> None:
    every = AlertRule(id=1, failures=10, minutes=15)
    hook = AlertRule(id=2, map="asset", failures=1, minutes=5, action="webhook", url="https://h.example/x")
    log_rule = AlertRule(id=3, map="asset", failures=3, minutes=5, action="log")
    rules = AlertRules([every, hook, log_rule])

    assert rules.rules_for("asset") == [hook, log_rule, every]
    assert rules.rules_for("warehouse") == [every]
    assert rules.rule_for("asset") == every  # the card shows the pause rule
    fired = rules.evaluate("asset", 1, rule=hook)
    assert fired.fire and not fired.pause
    assert (
        fired.reason == "dualwrite alert on map asset: 1 failures in the last 5 min (alert rule: 1 in 5 min)."
    )
    assert rules.get(3) == log_rule and rules.get(9) is None


def test_no_rules_means_no_rule_applies() -> None:
    rules = AlertRules([])

    assert rules.rules_for("asset") == []
    assert rules.rule_for("asset") == AlertRule()  # only for the card's window


def test_window_starts_m_minutes_ago_but_not_before_the_last_resume() -> None:
    rules = AlertRules([AlertRule(failures=3, minutes=15)])

    assert rules.window_start("asset", NOW) == NOW - timedelta(minutes=15)
    assert rules.window_start("asset", NOW, NOW - timedelta(hours=1)) == NOW - timedelta(minutes=15)
    assert rules.window_start("asset", NOW, NOW - timedelta(minutes=2)) == NOW - timedelta(minutes=2)


@pytest.mark.parametrize(
    "bad",
    [
        {"failures": 0},
        {"minutes": 0},
        {"failures": -1},
        {"minutes": 100_000},
        {"action": "email"},
        {"action": "webhook"},  # no url
        {"action": "webhook", "url": "ftp://x"},
        {"colour": "red"},
    ],
)
def test_rule_bounds(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AlertRule.model_validate(bad)


def test_reason_text_without_last_error() -> None:
    assert reason_text("asset", 3, AlertRule(failures=3, minutes=1)).endswith("Fix the cause, then resume.")


def test_webhook_urls_are_shown_without_their_secret_path() -> None:
    assert redacted_url("https://example.webhook.office.com/webhookb2/secret/IncomingWebhook/abc") == (
        "https://example.webhook.office.com/…"
    )
    rule = AlertRule(action="webhook", url="https://hooks.slack.com/services/T0/B0/secret")
    assert rule.redacted().url == "https://hooks.slack.com/…" and rule.url is not None


async def test_watcher_pauses_a_map_when_its_rule_is_reached(ops: Ops) -> None:
    await failures(ops.state, 9)
    ops.metrics.failed("warehouse", "cds->scm", "rejected", "Site 9 does not exist")
    [below] = await ops.watcher.check("warehouse")
    await failures(ops.state, 1)

    [decision] = await ops.watcher.check("warehouse")

    assert below.pause is False and decision.pause is True
    [(call, (entity, reason))] = ops.controller.calls
    assert (call, entity) == ("pause", "warehouse") and reason == decision.reason
    view = await (await ops.client.get("/api/maps/warehouse", headers=BEARER)).json()
    assert (view["state"], view["paused_by_rule"]) == ("paused", True)
    assert "10 failures in the last 15 min" in view["reason"] and "Site 9 does not exist" in view["reason"]
    alerts = await (await ops.client.get("/api/alerts", headers=BEARER)).json()
    assert alerts["paused_by_rule"] == ["warehouse"]


async def test_conflicts_resolved_by_policy_and_parked_backlog_do_not_pause_a_map(ops: Ops) -> None:
    # Both sides editing the same records makes conflicts by design; they are shown, not alarming.
    await failures(ops.state, 10, kind="conflict")
    await failures(ops.state, 10, kind="skipped-on-resume")
    assert (await ops.watcher.check("warehouse"))[0].pause is False
    await failures(ops.state, 10, kind="rejected")
    assert (await ops.watcher.check("warehouse"))[0].pause is True  # real failures still count


async def test_watcher_ignores_failures_outside_the_window(ops: Ops) -> None:
    await failures(ops.state, 10, age=timedelta(minutes=16))

    [decision] = await ops.watcher.check("warehouse")

    assert decision.pause is False and ops.controller.calls == []


async def test_resume_starts_a_new_window(ops: Ops) -> None:
    await failures(ops.state, 10, age=timedelta(seconds=5))
    await ops.watcher.check("warehouse")
    await ops.client.post("/api/maps/warehouse/resume", json={"mode": "catch-up"}, headers=BEARER)

    [again] = await ops.watcher.check("warehouse")

    assert again.pause is False and again.failures == 0
    assert [c[0] for c in ops.controller.calls] == ["pause", "resume"]


async def test_a_paused_map_is_not_paused_again(ops: Ops) -> None:
    await ops.state.set_map_state(MapState("warehouse", MapStatus.PAUSED, "paused by admin"))
    await failures(ops.state, 10)

    await ops.watcher.check_all()

    assert ops.controller.calls == []
    assert (await ops.state.get_map_state("warehouse")).reason == "paused by admin"


async def test_rule_created_through_the_api_drives_the_pause(ops: Ops) -> None:
    resp = await ops.client.post(
        "/api/alerts", json={"map": "asset", "failures": 2, "minutes": 5}, headers=BEARER
    )
    assert resp.status == 200
    await failures(ops.state, 2, entity="asset")

    await ops.watcher.check_all()

    assert [(c[0], c[1][0]) for c in ops.controller.calls] == [("pause", "asset")]
    assert "alert rule: 2 in 5 min" in ((await ops.state.get_map_state("asset")).reason or "")


async def test_a_log_rule_logs_at_error_level_once_per_n_failures(
    ops: Ops, caplog: pytest.LogCaptureFixture
) -> None:
    await ops.client.post(
        "/api/alerts", json={"map": "asset", "failures": 2, "minutes": 5, "action": "log"}, headers=BEARER
    )
    await failures(ops.state, 2, entity="asset")
    ops.metrics.failed("asset", "cds->scm", "rejected", "Field 'Site' must be filled in")

    with caplog.at_level(logging.ERROR, logger="bridge.ops.watcher"):
        await ops.watcher.check_all()
        await ops.watcher.check_all()  # the same failures do not fire it again

    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "dualwrite alert on map asset: 2 failures" in errors[0].getMessage()
    assert "Field 'Site' must be filled in" in errors[0].getMessage()
    assert ops.controller.calls == []  # a log rule does not pause


@pytest.fixture
async def hook() -> AsyncIterator[tuple[str, list[Any]]]:
    """A Teams/Slack-like incoming webhook over real HTTP, recording the JSON bodies it receives."""
    received: list[Any] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="1")  # Teams and Slack answer 200 with a short text body

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=400, text="invalid_payload")

    app = web.Application()
    app.router.add_post("/hook/secret", handle)
    app.router.add_post("/refuse", refuse)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    yield str(server.make_url("")), received
    await server.close()


async def test_a_webhook_rule_posts_text_json_once_per_n_failures(
    ops: Ops, hook: tuple[str, list[Any]]
) -> None:
    base, received = hook
    notifier = WebhookNotifier()
    watcher = OpsWatcher(
        controller=ops.controller,
        queue=ops.queue,
        state=ops.state,
        metrics=ops.metrics,
        alerts=ops.alerts,
        notify=notifier,
    )
    body = {"map": "asset", "failures": 2, "minutes": 5, "action": "webhook", "url": f"{base}/hook/secret"}
    created = await (await ops.client.post("/api/alerts", json=body, headers=BEARER)).json()
    assert created["url"] == "http://127.0.0.1/…"  # the API never shows the path
    await failures(ops.state, 2, entity="asset")

    await watcher.check("asset")
    await watcher.check("asset")
    await failures(ops.state, 2, entity="asset")
    await watcher.check("asset")
    await watcher.delivered()
    await notifier.close()

    # Teams' incoming webhook takes {"text": "..."} and answers "1": MicrosoftDocs/msteams-docs,
    # msteams-platform/webhooks-and-connectors/how-to/connectors-using.md ("Post a message to the
    # webhook using cURL"); Slack's incoming webhooks take the same {"text": "..."} body.
    assert len(received) == 2
    assert set(received[0]) == {"text"}
    assert received[0]["text"].startswith("dualwrite alert on map asset: 2 failures in the last 5 min")
    assert ops.controller.calls == []


async def test_a_webhook_that_fails_is_logged_not_raised(
    hook: tuple[str, list[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    base, _ = hook
    notifier = WebhookNotifier(timeout_s=5)
    with caplog.at_level(logging.ERROR, logger="bridge.ops.notify"):
        assert await notifier(f"{base}/refuse", "x") is False
        assert await notifier("http://127.0.0.1:9/nothing-listens", "x") is False
    await notifier.close()
    messages = [r.getMessage() for r in caplog.records]
    assert any("answered 400: invalid_payload" in m for m in messages)
    assert any("not reached" in m for m in messages)
    assert not any("/refuse" in m for m in messages)  # the URL's path is not logged


async def test_watcher_samples_queue_depth_and_lag(ops: Ops) -> None:
    await ops.queue.enqueue(event(key="1"))

    await ops.watcher.sample()

    snap = ops.metrics.snapshot("warehouse")
    assert snap.depth == 1 and snap.lag_s is not None and snap.lag_s >= 0
    assert ops.metrics.snapshot("asset").lag_s is None
