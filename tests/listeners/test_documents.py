"""Notifications of a document map's tables (tests/listeners/test_handlers.py's fakes): a header and
its lines become events keyed by the header's Dataverse id in the map's company, so the queue orders
a line with its header; a line whose images lack its header is read; one that cannot be placed is
answered and left out (RemoteExecutionContext shapes: tests/listeners/payloads.py)."""

from __future__ import annotations

from typing import Any

from tests.listeners.payloads import cds_context, ref
from tests.listeners.test_handlers import FakeSink, Rows, client, listener, mappings, post_cds, rows, sink

__all__ = ["client", "listener", "mappings", "rows", "sink"]  # the fixtures, shared

WO, LINE = "6f9619ff-8b86-d011-b42d-00c04fc964f1", "6f9619ff-8b86-d011-b42d-00c04fc964f2"


async def test_a_work_order_save_is_keyed_by_its_own_id_in_the_maps_company(
    client: Any, sink: FakeSink
) -> None:
    body = cds_context(logical="msdyn_workorder", record_id=WO, target={"msdyn_name": "WO-1"})
    resp = await post_cds(client, body)
    assert resp.status == 202
    [event] = sink.events
    assert (event.entity, event.company, event.key, event.record_id) == ("work_order", "USMF", WO, WO)


async def test_a_line_save_is_keyed_by_its_header(client: Any, sink: FakeSink) -> None:
    target = {"msdyn_workorder": ref("msdyn_workorder", WO), "msdyn_estimatequantity": 2}
    resp = await post_cds(
        client, cds_context(logical="msdyn_workorderproduct", record_id=LINE, target=target)
    )
    assert resp.status == 202
    [event] = sink.events
    assert (event.entity, event.key, event.record_id) == ("work_order", WO, LINE)
    assert event.record_key == f"work_order|USMF|{WO}"  # the header's record: ordered with it


async def test_a_line_without_its_header_in_the_images_is_read(
    client: Any, sink: FakeSink, rows: Rows
) -> None:
    rows.rows[LINE] = {"msdyn_workorderserviceid": LINE, "_msdyn_workorder_value": WO.upper()}
    body = cds_context(logical="msdyn_workorderservice", record_id=LINE, target={"msdyn_duration": 30})
    assert (await post_cds(client, body)).status == 202
    assert rows.calls == [("msdyn_workorderservices", LINE)]
    assert sink.events[0].key == WO


async def test_a_line_that_cannot_be_placed_is_answered_and_left_out(client: Any, sink: FakeSink) -> None:
    resp = await post_cds(client, cds_context("Delete", logical="msdyn_workorderproduct", record_id=LINE))
    assert resp.status == 200
    assert "no msdyn_workorder" in (await resp.json())["message"]
    assert sink.events == []
