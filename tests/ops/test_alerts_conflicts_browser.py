"""The alert rules view and the parked conflicts view in real headless Chromium (Debian's package,
driven by Playwright; the launch helpers of test_dashboard_browser). DUALWRITE_UPDATE_SCREENSHOT=1
writes the screenshots to docs/img/ (alerts.png, conflicts.png), otherwise to the test's folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Harness, eventually
from tests.e2e.test_manual_conflicts import (  # noqa: F401  (fixtures, used by name)
    MODES,
    SHIPVIAS,
    descriptions,
    manual_mappings,
    menv,
    open_conflict,
    synced_mode,
)
from tests.ops.test_dashboard_browser import page  # noqa: F401  (the fixture, used by name)

pytestmark = pytest.mark.timeout(120)
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


def _shot(tmp_path: Path, name: str) -> Path:
    return DOCS_IMG / name if os.environ.get("DUALWRITE_UPDATE_SCREENSHOT") == "1" else tmp_path / name


async def _login(env: Harness, page: Any) -> None:  # noqa: F811  (the page fixture's value)
    from playwright.async_api import expect

    base = env.bridge.url
    await page.goto(f"{base}/")
    await page.fill("#password", env.keys["admin_token"])
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{base}/")


async def test_alert_rules_view_add_change_delete(env: Harness, page: Any, tmp_path: Path) -> None:  # noqa: F811
    from playwright.async_api import expect

    blocked: list[str] = []
    page.on("request", lambda r: blocked.append(r.url) if not r.url.startswith(env.bridge.url) else None)
    page.on("dialog", lambda d: d.accept())
    await _login(env, page)
    default = page.locator('#alerts tr[data-rule="1"]')
    await expect(default.get_by_label("rule 1 map")).to_have_value("*")
    await expect(default.get_by_label("rule 1 failures")).to_have_value("10")

    # Add a webhook rule and a log rule for ship_via.
    form = page.locator("#alert-new")
    await form.get_by_label("map").select_option("ship_via")
    await form.get_by_label("N failures").fill("3")
    await form.get_by_label("M minutes").fill("5")
    await form.get_by_label("action").select_option("webhook")
    await form.get_by_label("webhook URL").fill("https://example.webhook.office.com/webhookb2/secret")
    await form.get_by_role("button", name="Add rule").click()
    hook = page.locator('#alerts tr[data-rule="2"]')
    await expect(hook.get_by_label("rule 2 action")).to_have_value("webhook", timeout=10_000)
    await expect(hook.get_by_label("rule 2 webhook URL")).to_have_attribute(
        "placeholder", "https://example.webhook.office.com/…"
    )
    await form.get_by_label("map").select_option("ship_via")
    await form.get_by_label("N failures").fill("1")
    await form.get_by_label("action").select_option("log")
    await form.get_by_role("button", name="Add rule").click()
    await expect(page.locator('#alerts tr[data-rule="3"]')).to_be_visible(timeout=10_000)
    await page.locator("#alerts-title").evaluate("e => e.scrollIntoView({block: 'start'})")
    shot = _shot(tmp_path, "alerts.png")
    await page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000

    # Change the webhook rule's N; its URL stays.
    await hook.get_by_label("rule 2 failures").fill("4")
    await hook.get_by_role("button", name="Save").click()
    await eventually(
        lambda: _rule_has(env, 2, failures=4), timeout=10, what="rule 2 changed through the page"
    )
    stored = [r for r in await env.bridge.state.alert_rules() or [] if r.id == 2]
    assert [(r.failures, r.url) for r in stored] == [
        (4, "https://example.webhook.office.com/webhookb2/secret")
    ]

    # Delete the log rule.
    await page.locator('#alerts tr[data-rule="3"]').get_by_role("button", name="Delete").click()
    await expect(page.locator('#alerts tr[data-rule="3"]')).to_have_count(0, timeout=10_000)
    rules = (await env.ops("GET", "/api/alerts")).body["rules"]
    assert [(r["id"], r["map"], r["action"]) for r in rules] == [
        (1, "*", "pause"),
        (2, "ship_via", "webhook"),
    ]
    assert blocked == []


async def _rule_has(env: Harness, rule_id: int, **values: Any) -> bool | None:
    rules = (await env.ops("GET", "/api/alerts")).body["rules"]
    rule = next((r for r in rules if r["id"] == rule_id), None)
    return True if rule and all(rule[k] == v for k, v in values.items()) else None


@pytest.mark.parametrize("webhook_mode", ["async"])
async def test_conflict_view_side_by_side_pick_edit_apply(menv: Harness, page: Any, tmp_path: Path) -> None:  # noqa: F811
    from playwright.async_api import expect

    env = menv
    cds_id = await synced_mode(env, "AIR", "Air freight")
    await env.ops("POST", "/api/maps/ship_via/pause", {})
    await env.cds_update(SHIPVIAS, cds_id, {"msdyn_description": "Air freight (Dataverse)"})
    await env.scm_update(MODES, "ModeCode", "AIR", {"ModeDescription": "Air freight, express (F&O)"})
    await env.sandbox.notifier.drain()
    await env.ops("POST", "/api/maps/ship_via/resume", {"mode": "catch-up"})
    await eventually(lambda: open_conflict(env, "AIR"), timeout=15, what="a parked conflict")

    await _login(env, page)
    conflict = page.locator('article.conflict[data-key="AIR"]')
    await expect(conflict).to_be_visible(timeout=10_000)
    row = conflict.locator("tr.differs")
    await expect(row.get_by_label("cds msdyn_description")).to_have_value("Air freight (Dataverse)")
    await expect(row.get_by_label("scm ModeDescription")).to_have_value("Air freight, express (F&O)")
    await expect(conflict.get_by_role("button", name="Apply to both systems")).to_be_disabled()

    # Keep F&O's version, edited.
    await conflict.get_by_role("button", name="Keep F&O").click()
    await expect(row.get_by_label("cds msdyn_description")).to_have_attribute("readonly", "")
    await row.get_by_label("scm ModeDescription").fill("Air freight, express")
    await page.locator("#alerts-title").evaluate("e => e.scrollIntoView({block: 'start'})")
    shot = _shot(tmp_path, "conflicts.png")
    await page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000
    await conflict.get_by_role("button", name="Apply F&O's version to both systems").click()

    await expect(conflict).to_have_count(0, timeout=10_000)
    await env.settle()
    assert await descriptions(env, "AIR") == ("Air freight, express", "Air freight, express")
    [resolved] = (await env.ops("GET", "/api/conflicts?status=resolved")).body["items"]
    assert resolved["winner"] == "scm" and resolved["resolved_by"].startswith("dashboard session ")
