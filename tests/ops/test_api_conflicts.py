"""/api/conflicts over the real routes and state store, with the recording Controller: the list,
the resolve call's input checks (nothing called on bad input) and how its outcomes are answered."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bridge.core.events import System
from bridge.state.base import ConflictStatus, ParkedConflict
from tests.ops.conftest import BEARER, Ops


def _conflict(key: str = "AIR") -> ParkedConflict:
    return ParkedConflict(
        entity="warehouse",
        company="USMF",
        key=key,
        cds_values={"msdyn_name": "dv"},
        scm_values={"WarehouseName": "fno"},
        event_id="cds:1",
        detected_at=datetime(2026, 1, 5, tzinfo=UTC),
    )


async def test_open_conflicts_are_listed_newest_first(ops: Ops) -> None:
    first = await ops.state.park_conflict(_conflict("A"))
    second = await ops.state.park_conflict(_conflict("B"))
    await ops.state.close_conflict(first, winner="cds", by="API token", at=datetime.now(UTC))

    open_ = await (await ops.client.get("/api/conflicts", headers=BEARER)).json()
    every = await (await ops.client.get("/api/conflicts?status=all", headers=BEARER)).json()

    assert [c["id"] for c in open_["items"]] == [second] and open_["open"] == 1
    assert [(c["id"], c["status"]) for c in every["items"]] == [(second, "open"), (first, "resolved")]
    assert every["items"][1]["winner"] == "cds" and every["items"][1]["resolved_by"] == "API token"
    bad = await ops.client.get("/api/conflicts?status=maybe", headers=BEARER)
    assert bad.status == 400 and "status" in (await bad.json())["message"]


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/api/conflicts/1/resolve", {"winner": "both"}, "winner"),
        ("/api/conflicts/1/resolve", {}, "winner"),
        ("/api/conflicts/1/resolve", {"winner": "cds", "values": [1]}, "values"),
        ("/api/conflicts/1/resolve", {"winner": "cds", "extra": 1}, "extra"),
        ("/api/conflicts/x/resolve", {"winner": "cds"}, "conflict id"),
    ],
)
async def test_bad_resolve_requests_call_nothing(
    ops: Ops, path: str, body: dict[str, Any], named: str
) -> None:
    resp = await ops.client.post(path, json=body, headers=BEARER)

    assert resp.status == 400 and named in (await resp.json())["message"]
    assert ops.controller.calls == []


@pytest.mark.parametrize(
    ("outcome", "status"),
    [("resolved", 200), ("not-found", 404), ("not-open", 409), ("invalid", 400), ("failed", 502)],
)
async def test_resolve_outcomes_and_who_acted(ops: Ops, outcome: str, status: int) -> None:
    ops.controller.resolve_outcome = outcome
    body = {"winner": "scm", "values": {"WarehouseName": "agreed"}}

    resp = await ops.client.post("/api/conflicts/7/resolve", json=body, headers=BEARER)

    assert resp.status == status
    assert ops.controller.calls == [
        ("resolve_conflict", (7, System.SCM, {"WarehouseName": "agreed"}, "API token"))
    ]
    if outcome == "resolved":
        assert await resp.json() == {
            "id": 7,
            "outcome": "resolved",
            "winner": "scm",
            "message": "outcome resolved",
        }
    else:
        assert (await resp.json())["message"] == f"outcome {outcome}"


async def test_the_list_reads_the_store(ops: Ops) -> None:
    cid = await ops.state.park_conflict(_conflict())
    [item] = (await (await ops.client.get("/api/conflicts?entity=warehouse", headers=BEARER)).json())["items"]
    assert (item["id"], item["key"], item["status"]) == (cid, "AIR", ConflictStatus.OPEN.value)
    assert (await (await ops.client.get("/api/conflicts?entity=asset", headers=BEARER)).json())["items"] == []
