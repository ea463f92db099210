"""Issue 20 in real headless Chromium (Debian's package, driven by Playwright, with the launch helpers
of tests/ops/test_dashboard_browser.py): failures filtered by state and resolved by a retry, the
activity view, and stopping and starting a map, each done by a person at the page against the
running bridge between both emulators. DUALWRITE_UPDATE_SCREENSHOT=1 writes the screenshots to
docs/img/ (the pictures in docs/operations.md); otherwise they go to the test's temporary folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bridge.sandbox.faults import FaultSettings
from bridge.systems.http import RetryPolicy
from tests.e2e.harness import Harness, eventually
from tests.ops import test_dashboard_browser as browser

page = browser.page  # the Chromium page fixture (Debian's chromium, Playwright), used by name

pytestmark = pytest.mark.timeout(120)

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


def _shot_path(tmp_path: Path, name: str) -> Path:
    return DOCS_IMG / name if os.environ.get("DUALWRITE_UPDATE_SCREENSHOT") == "1" else tmp_path / name


async def _screenshot(page: Any, tmp_path: Path, name: str) -> None:
    shot = _shot_path(tmp_path, name)
    await page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000  # a real picture, not an empty page


async def _log_in(env: Harness, page: Any) -> Any:
    from playwright.async_api import expect

    await page.goto(f"{env.bridge.url}/login")
    await page.fill("#password", env.keys["admin_token"])
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{env.bridge.url}/")
    card = page.locator('article.card[data-entity="ship_via"]')
    await expect(card.locator(".badge")).to_have_text("running", timeout=10_000)
    return card


async def _ship_via_on_scm(env: Harness, code: str) -> None:
    resp = await env.scm_create("DeliveryModesV2", {"ModeCode": code, "ModeDescription": f"mode {code}"})
    assert resp.status == 201, resp.body


async def test_failures_filtered_by_state_and_resolved_by_retry(
    env: Harness, page: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    card = await _log_in(env, page)
    # Dataverse is down: a person's new delivery mode in F&O fails every attempt (a retry-exhausted failure).
    env.bridge.cds.http.retry = RetryPolicy(attempts=1)  # the engine's retries only, to keep this short
    env.sandbox.faults["dataverse"].configure(FaultSettings(unavailable_rate=1.0, retry_after=0))
    await _ship_via_on_scm(env, "RTY1")
    await eventually(
        lambda: _failures(env, "open"), what="the change failed for good (an open failure)", timeout=20
    )
    await expect(card.locator(".badge")).to_have_text("failing", timeout=10_000)
    banner = page.locator("#banner")
    await expect(banner).to_contain_text("ship_via is failing")

    rows = page.locator("#failures tbody tr")
    await page.select_option("#failures-state", "open")
    await expect(rows).to_have_count(1, timeout=10_000)
    await expect(rows.first.locator("td.failure-state")).to_have_text("open")
    await page.select_option("#failures-state", "resolved")
    await expect(rows).to_have_count(0, timeout=10_000)
    await page.select_option("#failures-state", "open")
    await expect(rows).to_have_count(1, timeout=10_000)
    await _screenshot(page, tmp_path, "failures.png")

    # The cause is fixed; the admin retries it from the page: resolved by the retry, by this session.
    env.sandbox.faults["dataverse"].configure(FaultSettings())
    await rows.first.get_by_role("button", name="Retry").click()
    await eventually(lambda: env.cds_find("msdyn_shipvias", "msdyn_name", "RTY1"), what="the retry applied")
    await expect(rows).to_have_count(0, timeout=10_000)  # no open failure left
    await page.select_option("#failures-state", "resolved")
    await expect(rows).to_have_count(1, timeout=10_000)
    cell = rows.first.locator("td.failure-state")
    await expect(cell).to_contain_text("resolved (retry) by admin session ")
    await expect(banner).to_be_hidden(timeout=10_000)
    await expect(card.locator(".badge")).to_have_text("running")
    [failure] = (await env.ops("GET", "/api/failures?entity=ship_via&state=resolved")).body["items"]
    assert failure["resolution"] == "retry" and failure["state_by"].startswith("admin session ")


async def _failures(env: Harness, state: str) -> list[dict[str, Any]] | None:
    items = (await env.ops("GET", f"/api/failures?entity=ship_via&state={state}")).body["items"]
    return list(items) or None


async def test_stop_and_start_a_map_and_the_activity_view(env: Harness, page: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    card = await _log_in(env, page)
    page.on("dialog", lambda dialog: dialog.accept())  # "Stop ship_via? ..."
    await card.get_by_role("button", name="Stop").click()
    await expect(card.locator(".badge")).to_have_text("stopped", timeout=10_000)
    await expect(page.locator("#banner")).to_contain_text("ship_via is STOPPED")
    await expect(card.get_by_role("button", name="Start")).to_be_visible()

    # Stopped: a person's change in F&O is acknowledged and counted, nothing queued, nothing written.
    await _ship_via_on_scm(env, "STP1")
    await env.sandbox.notifier.drain()  # the notification was delivered and acknowledged
    view = (await env.ops("GET", "/api/maps/ship_via")).body
    assert view["state"] == "stopped" and view["queue_depth"] == 0
    scm_cds = next(d for d in view["directions"] if d["direction"] == "scm->cds")
    assert scm_cds["skipped"].get("map-stopped") == 1
    assert await env.cds_find("msdyn_shipvias", "msdyn_name", "STP1") is None
    await _screenshot(page, tmp_path, "map-stopped.png")

    await card.get_by_role("button", name="Start").click()
    await expect(card.locator(".badge")).to_have_text("running", timeout=10_000)
    await expect(page.locator("#banner")).to_be_hidden()
    await _ship_via_on_scm(env, "STP2")  # running again: applied
    await eventually(lambda: env.cds_find("msdyn_shipvias", "msdyn_name", "STP2"), what="STP2 applied")
    assert await env.cds_find("msdyn_shipvias", "msdyn_name", "STP1") is None  # dropped while stopped

    # The activity view: who stopped and started it, and the applied change with its latency.
    activity = page.locator("#activity tbody tr")
    await page.select_option("#activity-entity", "ship_via")
    await page.select_option("#activity-category", "event")
    await expect(activity).to_have_count(2, timeout=10_000)
    await expect(activity.nth(0)).to_have_attribute("data-kind", "started")
    await expect(activity.nth(1)).to_have_attribute("data-kind", "stopped")
    await expect(activity.nth(1)).to_contain_text("admin session ")
    await page.select_option("#activity-category", "change")
    applied = page.locator('#activity tbody tr[data-kind="applied"]')
    await expect(applied.first).to_contain_text("USMF/STP2 scm->cds", timeout=10_000)
    await page.select_option("#activity-category", "")  # everything, for the picture
    await expect(activity).to_have_count(3, timeout=10_000)
    await page.locator("#activity-title").scroll_into_view_if_needed()
    await _screenshot(page, tmp_path, "activity.png")
