"""The dashboard in real headless Chromium (Debian's package, driven by Playwright; never a downloaded
browser): log in, see a change made on the emulated Dataverse counted, pause a map, see it paused,
resume it. Takes a screenshot with live figures; DUALWRITE_UPDATE_SCREENSHOT=1 writes it to
docs/img/dashboard.png (the picture in the docs), otherwise it goes to the test's temporary folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Harness, eventually

pytestmark = pytest.mark.timeout(120)

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "dashboard.png"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str | None:
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _missing(what: str) -> None:
    message = f"{what}: run scripts/install-browser.sh"
    if os.environ.get("CI"):
        pytest.fail(message)  # CI must really run the browser test
    pytest.skip(message)


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    executable = _chromium()
    if executable is None:
        _missing("Debian's chromium is not installed")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _missing("the playwright Python package is not installed")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, headless=True, args=LAUNCH_ARGS)
        context = await browser.new_context(viewport={"width": 1440, "height": 1000})
        try:
            yield await context.new_page()
        finally:
            await browser.close()


async def test_dashboard_login_count_pause_resume(env: Harness, page: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    base = env.bridge.url
    blocked: list[str] = []
    page.on("request", lambda r: blocked.append(r.url) if not r.url.startswith(base) else None)

    # Log in: the dashboard sends us to the login page first.
    await page.goto(f"{base}/")
    await expect(page).to_have_url(f"{base}/login?next=%2F")
    await page.fill("#password", env.keys["admin_token"])
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{base}/")
    card = page.locator('article.card[data-entity="ship_via"]')
    await expect(card).to_be_visible()
    await expect(card.locator(".badge")).to_have_text("running")
    await expect(card.locator('[data-figure="ok"]')).to_have_text("0")

    # A person creates a ship via in Dataverse; the bridge writes it to F&O; the card counts it.
    resp = await env.cds_create("msdyn_shipvias", {"msdyn_name": "AIR", "msdyn_description": "Air freight"})
    assert resp.status == 201, resp.body
    await eventually(lambda: env.scm_find("DeliveryModesV2", "ModeCode", "AIR"), what="AIR in F&O")
    await expect(card.locator('[data-figure="ok"]')).to_have_text("1", timeout=10_000)
    await expect(card.locator('[data-figure="cds"]')).to_have_text("1")
    # And one the other way, so the screenshot shows both directions.
    resp = await env.scm_create("DeliveryModesV2", {"ModeCode": "SEA", "ModeDescription": "Sea freight"})
    assert resp.status == 201, resp.body
    await expect(card.locator('[data-figure="scm"]')).to_have_text("1", timeout=10_000)

    # Pause the map: the card turns red with its reason and the banner names it.
    await card.get_by_role("button", name="Pause").click()
    await expect(card.locator(".badge")).to_have_text("paused", timeout=10_000)
    await expect(card).to_have_class("card state-paused")
    await expect(card.locator(".reason")).to_have_text("paused by admin")
    banner = page.locator("#banner")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("ship_via is PAUSED")
    state = await env.ops("GET", "/api/maps/ship_via")
    assert state.body["state"] == "paused"
    shot = (
        DOCS_SCREENSHOT
        if os.environ.get("DUALWRITE_UPDATE_SCREENSHOT") == "1"
        else tmp_path / "dashboard.png"
    )
    await page.evaluate("window.scrollTo(0, 0)")  # the banner and the first cards, not where Pause was
    await page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000  # a real picture, not an empty page

    # Resume it (catch up first): running again, banner gone.
    await card.get_by_label("Resume mode for ship_via").select_option("catch-up")
    await card.get_by_role("button", name="Resume").click()
    await expect(card.locator(".badge")).to_have_text("running", timeout=10_000)
    await expect(banner).to_be_hidden()
    assert (await env.ops("GET", "/api/maps/ship_via")).body["state"] == "running"
    assert blocked == []  # nothing fetched from anywhere but the bridge
