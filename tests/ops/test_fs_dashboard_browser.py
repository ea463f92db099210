"""The dashboard shows the Field Service document maps like the five entity maps (issue 23): a card
per map with its figures, a work order written to F&O counted as applied, a refused one as failed
with F&O's message (real headless Chromium, as tests/ops/test_dashboard_browser.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.fieldservice import SCHEDULED, dv_post, fs_setup, product_line, sales_lines, work_order
from tests.e2e.harness import Harness
from tests.ops.test_dashboard_browser import page  # noqa: F401  (the browser fixture)

pytestmark = pytest.mark.timeout(120)


async def test_the_document_maps_have_cards_with_figures_and_failures(env: Harness, page: Any) -> None:  # noqa: F811
    from playwright.async_api import expect

    base = env.bridge.url
    await page.goto(f"{base}/")
    await page.fill("#password", env.keys["admin_token"])
    await page.click("button[type=submit]")
    for name in ("product", "work_order", "agreement_invoice"):
        await expect(page.locator(f'article.card[data-entity="{name}"]')).to_be_visible()
    ids = await fs_setup(env)  # two products released in F&O: the product card counts them
    product = page.locator('article.card[data-entity="product"]')
    await expect(product.locator('[data-figure="ok"]')).to_have_text("2", timeout=10_000)

    wo = await work_order(env, ids["account"], msdyn_systemstatus=SCHEDULED)
    resp = await product_line(
        env, wo["msdyn_workorderid"], ids["item"], ids["ea"], 1, msdyn_estimatequantity=1
    )
    assert resp.status == 201, resp.body
    assert sorted(await sales_lines(env, str(wo["msdyn_name"]))) == [1]
    card = page.locator('article.card[data-entity="work_order"]')
    await expect(card.locator('[data-figure="ok"]')).not_to_have_text("0", timeout=10_000)

    stranger = await dv_post(env, "accounts", {"name": "Nobody", "accountnumber": "NOBODY"})
    refused = await work_order(env, str(stranger["accountid"]))
    resp = await env.request(
        "cds", "PATCH", f"msdyn_workorders({refused['msdyn_workorderid']})", {"msdyn_systemstatus": SCHEDULED}
    )
    assert resp.status >= 400, resp.body  # F&O refused the sales order: the save rolled back
    await expect(card.locator('[data-figure="failed"]')).to_contain_text("1", timeout=10_000)
    await expect(card.locator(".last-error")).to_contain_text("NOBODY", timeout=10_000)
