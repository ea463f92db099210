"""The drift view on the dashboard, in real headless Chromium (the launch helpers of
tests/ops/test_dashboard_browser): a check run from the page shows the drift made behind the bridge's
back, and its Repair button copies it over. DUALWRITE_UPDATE_SCREENSHOT=1 writes docs/img/drift.png."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.drift.test_drift_api import _behind_the_bridge
from tests.e2e.harness import Harness, eventually
from tests.ops.test_dashboard_browser import page  # noqa: F401  (the fixture, used by name)

pytestmark = pytest.mark.timeout(120)
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


@pytest.fixture
def webhook_mode() -> str:
    return "async"


async def test_drift_view_checks_and_repairs(env: Harness, page: Any, tmp_path: Path) -> None:  # noqa: F811
    from playwright.async_api import expect

    await _behind_the_bridge(env)
    base = env.bridge.url
    await page.goto(f"{base}/")
    await page.fill("#password", env.keys["admin_token"])
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{base}/")
    await expect(page.locator("#drift-empty")).to_be_visible()

    await page.get_by_role("button", name="Check every map now").click()
    row = page.locator('#drift tr[data-entity="ship_via"]')
    await expect(row).to_contain_text(
        "2 drifted (missing on Dataverse 1, on F&O 0, different 1)", timeout=20_000
    )
    await expect(row).to_contain_text("USMF/Hidden missing on Dataverse")
    await expect(row).to_contain_text("USMF/Seen differs: msdyn_description / ModeDescription")
    await expect(page.locator('#drift tr[data-entity="warehouse"]')).to_contain_text("no drift")
    await page.locator("#drift-title").evaluate("e => e.scrollIntoView({block: 'start'})")
    shot = (
        DOCS_IMG / "drift.png"
        if os.environ.get("DUALWRITE_UPDATE_SCREENSHOT") == "1"
        else tmp_path / "drift.png"
    )
    await page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000

    await row.get_by_role("button", name="Repair from F&O").click()
    await expect(row).to_contain_text("2 repaired from F&O", timeout=20_000)

    async def copied() -> bool:
        seen = await env.cds_find("msdyn_shipvias", "msdyn_name", "Seen")
        return bool(seen and seen["msdyn_description"] == "changed")

    await eventually(copied, what="the repair")
    assert await env.cds_find("msdyn_shipvias", "msdyn_name", "Hidden") is not None
    await row.get_by_role("button", name="Check now").click()
    await expect(row).to_contain_text("no drift", timeout=20_000)
