"""The dashboard's pictures in real headless Chromium (Debian's package, driven by Playwright): each
map card's charts (throughput, latency, lag over the last hour, drawn by the vendored uPlot) render
with data points after changes made as a person; the failure table reads at phone width; the
favicon is served. Takes a screenshot of each view: DUALWRITE_UPDATE_SCREENSHOT=1 (``make
screenshots``) writes them to docs/img/ (the pictures in docs/operations.md), otherwise they go to
the test's temporary folder."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.entities import site_id
from tests.e2e.harness import Harness, eventually
from tests.ops.test_dashboard_browser import LAUNCH_ARGS, _chromium, _missing

pytestmark = pytest.mark.timeout(120)

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
PHONE = {"width": 390, "height": 844}
CDS_COLOUR, SCM_COLOUR = "#2457c5", "#7b3fc4"  # style.css --cds, --scm

# How many pixels of one chart's canvas have (nearly) the given colour: the series was drawn.
PIXELS_OF = """([entity, kind, hex]) => {
  const card = document.querySelector(`article.card[data-entity="${entity}"]`);
  const canvas = card && card.querySelector(`[data-chart="${kind}"] canvas`);
  if (!canvas) return -1;
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (Math.abs(data[i] - r) < 12 && Math.abs(data[i + 1] - g) < 12 && Math.abs(data[i + 2] - b) < 12
        && data[i + 3] > 200) n++;
  }
  return n;
}"""


# The elements that reach past the right edge of the screen (for the assertion's message).
WIDER_THAN_SCREEN = """Array.from(document.querySelectorAll("body *"))
  .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5 && !e.closest(".table-wrap"))
  .slice(0, 12)
  .map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className}: ${e.getBoundingClientRect().right}`)"""


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    """A Chromium page as tests/ops/test_dashboard_browser.py opens one (Debian's browser, never a
    downloaded one; a skip locally, a failure in CI, when it is missing)."""
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


def _shot(tmp_path: Path, name: str) -> Path:
    if os.environ.get("DUALWRITE_UPDATE_SCREENSHOT") == "1":
        return DOCS_IMG / name
    return tmp_path / name


async def _points(page: Any, entity: str, kind: str) -> int:
    return int(await page.evaluate("([e, k]) => dwCharts.points(e, k)", [entity, kind]))


async def _log_in(env: Harness, page: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    base = env.bridge.url
    await page.goto(f"{base}/")
    await expect(page).to_have_url(f"{base}/login?next=%2F")
    icon = await page.get_attribute("link[rel=icon]", "href")
    assert icon == "/static/favicon.svg"
    await page.screenshot(path=str(_shot(tmp_path, "login.png")))
    await page.fill("#password", env.keys["admin_token"])
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{base}/")


async def test_charts_render_with_data_points(env: Harness, page: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    base = env.bridge.url
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(base) else None)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await _log_in(env, page, tmp_path)
    assert await page.get_attribute("link[rel=icon]", "href") == "/static/favicon.svg"
    card = page.locator('article.card[data-entity="ship_via"]')
    await expect(card.locator('[data-chart="throughput"] canvas')).to_be_visible()
    await expect(card.locator('[data-chart="latency"] canvas')).to_be_visible()
    await expect(card.locator('[data-chart="lag"] canvas')).to_be_visible()

    # Changes both ways, made as a person, applied by the bridge.
    for code in ("AIR", "BOAT"):
        resp = await env.cds_create("msdyn_shipvias", {"msdyn_name": code, "msdyn_description": code})
        assert resp.status == 201, resp.body
    resp = await env.scm_create("DeliveryModesV2", {"ModeCode": "SEA", "ModeDescription": "Sea freight"})
    assert resp.status == 201, resp.body
    await expect(card.locator('[data-figure="ok"]')).to_have_text("3", timeout=10_000)

    # A change waits while the map is paused, so the lag chart has something to show.
    assert (await env.ops("POST", "/api/maps/ship_via/pause", {"reason": "charts"})).status == 200
    resp = await env.scm_create("DeliveryModesV2", {"ModeCode": "RAIL", "ModeDescription": "Rail"})
    assert resp.status == 201, resp.body

    async def lag_shown() -> bool:
        return await _points(page, "ship_via", "lag") >= 1

    await eventually(lag_shown, timeout=20, what="a lag point on the chart")
    assert (await env.ops("POST", "/api/maps/ship_via/resume", {"mode": "catch-up"})).status == 200
    await expect(card.locator('[data-figure="ok"]')).to_have_text("4", timeout=10_000)

    async def charted() -> bool:
        return (
            await _points(page, "ship_via", "throughput") >= 2  # this minute, each direction
            and await _points(page, "ship_via", "latency") >= 2
        )

    await eventually(charted, timeout=10, what="throughput and latency points on the charts")
    # Drawn, not only held: the canvases carry each direction's colour.
    for kind in ("throughput", "latency"):
        for colour in (CDS_COLOUR, SCM_COLOUR):
            drawn = await page.evaluate(PIXELS_OF, ["ship_via", kind, colour])
            assert drawn > 0, (kind, colour)
    # Readable: each chart is the card's width and tall enough to read (not a thumbnail).
    box = await card.locator('[data-chart="throughput"] canvas').bounding_box()
    assert box is not None and box["height"] >= 100 and box["width"] >= 300, box
    shot = _shot(tmp_path, "charts.png")
    await card.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000  # a real picture, not an empty box
    assert outside == []  # uPlot comes from the bridge, like everything else
    assert errors == []  # no script error, no CSP refusal


async def test_failure_table_reads_at_phone_width(env: Harness, page: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    # A change F&O refuses (its WarehouseId takes 10 characters): a failure with both systems' text.
    site = await site_id(env, "1")
    too_long = "WAREHOUSE-NORTH"
    resp = await env.cds_create(
        "msdyn_warehouses",
        {
            "msdyn_warehouseidentifier": too_long,
            "msdyn_name": too_long,
            "msdyn_operationalsite@odata.bind": f"/msdyn_operationalsites({site})",
        },
    )
    assert resp.status >= 400, resp.body
    await page.set_viewport_size(PHONE)
    await _log_in(env, page, tmp_path)
    row = page.locator("#failures tbody tr").first
    await expect(row).to_be_visible(timeout=10_000)
    await expect(row.locator('td[data-label="record"]')).to_contain_text(too_long)
    # One of each, said in the singular.
    await expect(page.locator("#overall")).to_have_text("1 map needs attention")
    await expect(page.locator('#banner [data-entity="warehouse"]')).to_contain_text(": 1 recent failure —")

    # Nothing wider than the phone: the page does not scroll sideways, and the row's every cell,
    # its Retry button included, lies within the screen.
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], await page.evaluate(WIDER_THAN_SCREEN)
    for cell in await row.locator("td").all():
        box = await cell.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    await row.scroll_into_view_if_needed()
    await expect(row.get_by_role("button", name="Retry")).to_be_in_viewport()
    await page.screenshot(path=str(_shot(tmp_path, "phone-failures.png")))


async def test_favicon_is_served_to_everyone(env: Harness) -> None:
    # The login page shows it before anyone has logged in.
    async with env.http.get(f"{env.bridge.url}/static/favicon.svg") as resp:
        assert resp.status == 200
        assert resp.content_type == "image/svg+xml"
        assert "<svg" in await resp.text()
