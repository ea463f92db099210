"""Alert rules survive a restart of the bridge: the settings' ``[[alerts]]`` seed the state store on
the first start; rules changed through /api/alerts are what the bridge has after a restart, even
when the settings then say otherwise (docs/operations.md, "Where rules come from")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from bridge.app import Bridge
from bridge.demo import demo_settings
from bridge.settings import AlertAction, AlertSettings, Settings


def _settings(sandbox: Any, data_dir: Path, alerts: list[AlertSettings]) -> Settings:
    settings = demo_settings(sandbox.info, host="127.0.0.1", port=0, data_dir=data_dir)
    settings.alerts = alerts
    return settings


async def _call(bridge: Bridge, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    token = bridge.settings.admin_token.get_secret_value()
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, f"{bridge.url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}
        ) as resp,
    ):
        return resp.status, await resp.json()


def _rules(body: Any) -> list[tuple[str, int, int, str]]:
    return [(r["map"], r["failures"], r["minutes"], r["action"]) for r in body["rules"]]


async def test_rules_changed_through_the_api_survive_a_restart(sandbox: Any, tmp_path: Path) -> None:
    seed = [
        AlertSettings(map="*", failures=10, minutes=15),
        AlertSettings(map="warehouse", failures=2, minutes=5, action=AlertAction.LOG),
    ]
    first = Bridge(_settings(sandbox, tmp_path / "bridge", seed))
    await first.start()
    try:
        status, body = await _call(first, "GET", "/api/alerts")
        assert status == 200
        assert _rules(body) == [("*", 10, 15, "pause"), ("warehouse", 2, 5, "log")]  # seeded
        log_id = body["rules"][1]["id"]
        added = await _call(
            first,
            "POST",
            "/api/alerts",
            {
                "map": "ship_via",
                "failures": 1,
                "minutes": 60,
                "action": "webhook",
                "url": "https://hooks.example/x/y",
            },
        )
        assert added[0] == 200
        assert (await _call(first, "PUT", f"/api/alerts/{log_id}", {"failures": 4}))[0] == 200
        assert (await _call(first, "DELETE", f"/api/alerts/{body['rules'][0]['id']}"))[0] == 200
    finally:
        await first.stop()

    # Restarted on the same data, with settings that now say something else: the stored rules win.
    second = Bridge(_settings(sandbox, tmp_path / "bridge", [AlertSettings(map="*", failures=99, minutes=1)]))
    await second.start()
    try:
        status, body = await _call(second, "GET", "/api/alerts")
        assert status == 200
        assert _rules(body) == [("warehouse", 4, 5, "log"), ("ship_via", 1, 60, "webhook")]
        assert body["rules"][1]["url"] == "https://hooks.example/…"
    finally:
        await second.stop()
