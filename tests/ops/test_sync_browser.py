"""The initial sync view in real headless Chromium (Debian's package, driven by Playwright; the
launch helpers of test_dashboard_browser): the run's figures per map and side, and the sync errors,
paged and filtered. DUALWRITE_UPDATE_SCREENSHOT=1 writes docs/img/initial-sync.png, otherwise the
screenshot goes to the test's folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Harness
from tests.e2e.test_initial_sync import run_initial
from tests.ops.test_dashboard_browser import page  # noqa: F401  (the fixture, used by name)

pytestmark = pytest.mark.timeout(120)
DASH = "\u2013"  # the range's en dash
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


@pytest.fixture
def webhook_mode() -> str:
    return "async"


async def test_the_run_and_its_errors_on_the_dashboard(env: Harness, page: Any, tmp_path: Path) -> None:  # noqa: F811
    from playwright.async_api import expect

    company = env.company_id
    rows = [{"msdyn_name": f"OK{n:02d}", "msdyn_description": "fine"} for n in range(40)]
    rows += [{"msdyn_name": f"MUCH-TOO-LONG-{n:02d}", "msdyn_description": "refused"} for n in range(30)]
    env.sandbox.dataverse.seed("msdyn_shipvias", [{**r, "_msdyn_company_value": company} for r in rows])
    env.sandbox.fno.seed("PaymentTerms", [{"dataAreaId": "usmf", "Name": "Net30", "NumberOfDays": 30}])
    report = await run_initial(env, {"maps": ["ship_via", "payment_terms"], "master": "cds"})
    assert report["failed"] == 30

    base = env.bridge.url
    await page.goto(f"{base}/")
    await page.fill("#password", env.keys["admin_token"])
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{base}/")
    summary = page.locator("#initial-summary")
    await expect(summary).to_contain_text("run 1: done", timeout=10_000)
    await expect(summary).to_contain_text("30 failed")
    ship = page.locator('#initial tr[data-map="ship_via"][data-side="scm"]')
    await expect(ship.locator('[data-figure="written"]')).to_have_text("40")
    await expect(ship.locator('[data-figure="failed"]')).to_have_text("30")
    terms = page.locator('#initial tr[data-map="payment_terms"][data-side="cds"]')
    await expect(terms.locator('[data-figure="written"]')).to_have_text("1")  # created on Dataverse

    errors = page.locator("#sync-errors tbody tr")
    await expect(errors).to_have_count(25)  # a page
    await expect(page.locator("#sync-errors-range")).to_have_text(f"1{DASH}25 of 30")
    await expect(errors.first).to_contain_text("MUCH-TOO-LONG-")
    await expect(errors.first).to_contain_text("400")
    await expect(errors.first).to_contain_text('{"ModeDescription":"refused"}')
    await page.click("#sync-errors-next")
    await expect(errors).to_have_count(5)
    await expect(page.locator("#sync-errors-range")).to_have_text(f"26{DASH}30 of 30")
    await page.locator("#sync-errors-map").select_option("payment_terms")
    await expect(page.locator("#sync-errors-empty")).to_be_visible()
    await page.locator("#sync-errors-map").select_option("ship_via")
    await page.fill("#sync-errors-company", "DEMF")
    await page.locator("#sync-errors-company").dispatch_event("change")
    await expect(page.locator("#sync-errors-empty")).to_be_visible()
    await page.fill("#sync-errors-company", "USMF")
    await page.locator("#sync-errors-company").dispatch_event("change")
    await expect(errors).to_have_count(25)

    await page.locator("#initial-title").evaluate(
        "e => { e.scrollIntoView({block: 'start'}); scrollBy(0, -70); }"
    )
    shot = (
        DOCS_IMG / "initial-sync.png"
        if os.environ.get("DUALWRITE_UPDATE_SCREENSHOT") == "1"
        else tmp_path / "s.png"
    )
    await page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000
