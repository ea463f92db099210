"""The Systems section and a map card retrying through an outage, in real headless Chromium
(Debian's package, driven by Playwright, launched as tests/ops/test_dashboard_browser.py does).

A person's change in Dataverse reaches F&O: both systems show as reachable with a valid token, and
the registrations ``dualwrite register`` wrote are listed. Then Dataverse answers 503 to everything
while a person changes a record in F&O: the ship_via card says "retrying" with Dataverse's own text,
and the Dataverse block says it answers 503. Once it recovers the card stops retrying. Screenshots go
to docs/img/systems.png and docs/img/retrying.png with DUALWRITE_UPDATE_SCREENSHOT=1 (otherwise to
the test's temporary folder)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.register import registered_tables
from bridge.sandbox.faults import FaultSettings
from bridge.settings import SyncSettings
from bridge.systems.http import RetryPolicy
from tests.e2e.harness import Harness, eventually
from tests.ops.test_dashboard_browser import LAUNCH_ARGS, _chromium, _missing

pytestmark = pytest.mark.timeout(120)

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
UNAVAILABLE = "cds 503: The service is temporarily unavailable. Try again later."


@pytest.fixture
def sync_settings() -> SyncSettings:
    # Attempts enough to outlast the outage, spaced so the card is seen retrying between them.
    return SyncSettings(
        backoff_initial_s=1.0, backoff_max_s=2.0, max_attempts=200, sync_budget_s=8, lease_s=5
    )


@pytest.fixture
async def browser_page() -> AsyncIterator[Any]:
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


def _shot(name: str, tmp_path: Path) -> Path:
    return DOCS_IMG / name if os.environ.get("DUALWRITE_UPDATE_SCREENSHOT") == "1" else tmp_path / name


async def test_systems_section_and_a_retrying_card(env: Harness, browser_page: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    page = browser_page
    base = env.bridge.url
    elsewhere: list[str] = []
    page.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith(base) else None)
    await page.goto(f"{base}/")
    await page.fill("#password", env.keys["admin_token"])
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{base}/")

    resp = await env.cds_create("msdyn_shipvias", {"msdyn_name": "AIR", "msdyn_description": "Air freight"})
    assert resp.status == 201, resp.body
    await eventually(lambda: env.scm_find("DeliveryModesV2", "ModeCode", "AIR"), what="AIR in F&O")

    section = page.locator("#systems")
    await expect(section.get_by_role("heading", name="Systems")).to_be_visible()
    cds = section.locator('article.system[data-system="cds"]')
    scm = section.locator('article.system[data-system="scm"]')
    await expect(cds.locator(".pill")).to_have_text("reachable", timeout=10_000)
    await expect(scm.locator(".pill")).to_have_text("reachable")
    await expect(cds.locator('[data-figure="token"]')).to_contain_text("valid until")
    await expect(cds.locator(".url")).to_have_text(env.bridge.cds.http.base_url)
    steps = section.locator("#registrations tbody tr")
    # Create/Update/Delete per watched Dataverse table (a document map's header and line tables).
    tables = sum(len(registered_tables(m)) for m in env.bridge.mappings.maps.values())
    await expect(steps).to_have_count(3 * tables)
    await expect(section).to_contain_text("every step the maps need is registered")
    await expect(section.locator(".endpoints")).to_contain_text(f"(this bridge's): {base}/webhooks/cds")
    await section.screenshot(path=str(_shot("systems.png", tmp_path)))

    # Dataverse down: a person's change in F&O retries, and the page says so with Dataverse's words.
    env.bridge.cds.http.retry = RetryPolicy(attempts=2, initial=0.05, maximum=0.1)
    faults = env.sandbox.faults["dataverse"]
    faults.configure(FaultSettings(unavailable_rate=1.0))
    resp = await env.scm_create("DeliveryModesV2", {"ModeCode": "SEA", "ModeDescription": "Sea freight"})
    assert resp.status == 201, resp.body
    card = page.locator('article.card[data-entity="ship_via"]')
    retrying = card.locator('[data-figure="retrying"]')
    await expect(retrying).to_be_visible(timeout=15_000)
    await expect(retrying).to_contain_text("retrying")
    await expect(retrying).to_contain_text("1 change")
    await expect(retrying).to_contain_text(UNAVAILABLE)
    await expect(cds.locator(".pill")).to_have_text("answering 503", timeout=10_000)
    await expect(cds.locator(".last-error")).to_contain_text(UNAVAILABLE)
    await card.screenshot(path=str(_shot("retrying.png", tmp_path)))

    # Recovered: applied, the card no longer retrying.
    faults.clear()
    await eventually(lambda: env.cds_find("msdyn_shipvias", "msdyn_name", "SEA"), timeout=20, what="SEA")
    await expect(retrying).to_be_hidden(timeout=10_000)
    await expect(cds.locator(".pill")).to_have_text("reachable", timeout=10_000)
    assert elsewhere == []  # nothing fetched from anywhere but the bridge
