"""F&O data events -> ChangeEvents."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.core.errors import PayloadError
from bridge.core.events import Operation, SyncMode, System
from bridge.core.mapping import MappingSet, load_mappings
from bridge.listeners.scm import parse_data_event, parse_scm_notification
from tests.listeners.payloads import data_event, fno_warehouse

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mappings() -> MappingSet:
    return load_mappings(ROOT / "mappings")


def test_update_maps_mserp_names_back_and_diffs_against_the_pre_image(mappings: MappingSet) -> None:
    body = data_event(target=fno_warehouse(mserp_warehousename="New"), pre=fno_warehouse(), event_id="E-1")
    event = parse_data_event(body, mappings)
    assert event is not None
    assert (event.source, event.entity, event.company, event.key) == (System.SCM, "warehouse", "USMF", "11")
    assert event.operation is Operation.UPDATE and event.mode is SyncMode.ASYNC
    assert event.changed == {"WarehouseName": "New"}
    assert event.image is not None and event.image["AreAdvancedWarehouseManagementProcessesEnabled"] == "Yes"
    assert event.image["dataAreaId"] == "usmf" and event.pre_image is not None
    assert event.event_id == "scm:E-1"
    assert event.initiated_by == "5f0c6b8e-7a4d-4b2e-9c1f-3d2e1f0a9b8c"
    # The event's commit time (milliseconds) orders changes; ModifiedDateTime has whole seconds only.
    assert event.source_timestamp == datetime(2026, 11, 20, 10, 0, 1, tzinfo=UTC)


# The pre-image's place: "The entity fields will be included in the schema in the Target and
# PreImage properties of the InputParameters" (MicrosoftDocs/dynamics-365-unified-operations-public,
# articles/fin-ops-core/dev-itpro/business-events/data-events.md).
def test_pre_image_is_read_from_input_parameters_as_documented(mappings: MappingSet) -> None:
    body = data_event(
        "OnExternalUpdated", target=fno_warehouse(mserp_warehousename="New"), pre=fno_warehouse()
    )
    assert [kv["key"] for kv in body["InputParameters"]] == ["Target", "PreImage"]
    assert body["PreEntityImages"] == []
    event = parse_data_event(body, mappings)
    assert event is not None and event.pre_image is not None
    assert event.pre_image["WarehouseName"] == "Main warehouse"
    assert event.changed == {"WarehouseName": "New"}


def test_pre_image_in_pre_entity_images_is_still_read(mappings: MappingSet) -> None:
    body = data_event(
        target=fno_warehouse(mserp_warehousename="New"), pre=fno_warehouse(), pre_in="PreEntityImages"
    )
    assert [kv["key"] for kv in body["InputParameters"]] == ["Target"]
    event = parse_data_event(body, mappings)
    assert event is not None and event.pre_image is not None
    assert event.pre_image["WarehouseName"] == "Main warehouse"
    assert event.changed == {"WarehouseName": "New"}


def test_documented_pre_image_wins_over_pre_entity_images(mappings: MappingSet) -> None:
    body = data_event(target=fno_warehouse(mserp_warehousename="New"), pre=fno_warehouse())
    body["PreEntityImages"] = data_event(
        pre=fno_warehouse(mserp_warehousename="Stale"), pre_in="PreEntityImages"
    )["PreEntityImages"]
    event = parse_data_event(body, mappings)
    assert event is not None and event.pre_image is not None
    assert event.pre_image["WarehouseName"] == "Main warehouse"


def test_malformed_pre_image_is_named(mappings: MappingSet) -> None:
    body = data_event(pre=fno_warehouse())
    body["InputParameters"][1]["value"] = {"Attributes": "nope"}
    with pytest.raises(PayloadError, match=r"InputParameters\.PreImage"):
        parse_data_event(body, mappings)


def test_columns_the_map_does_not_know_are_dropped(mappings: MappingSet) -> None:
    event = parse_data_event(data_event("Create", target=fno_warehouse(mserp_somethingelse="x")), mappings)
    assert event is not None and event.image is not None
    assert "somethingelse" not in {k.lower() for k in event.image}
    assert event.changed["WarehouseId"] == "11"


def test_delete_carries_keys_only_and_uses_the_event_time(mappings: MappingSet) -> None:
    body = data_event("Delete", target={"mserp_dataareaid": "usmf", "mserp_warehouseid": "11"})
    event = parse_data_event(body, mappings)
    assert event is not None and event.operation is Operation.DELETE
    assert event.image is None and event.changed == {} and event.key == "11"
    assert event.source_timestamp == datetime(2026, 11, 20, 10, 0, 1, tzinfo=UTC)


def test_power_platform_message_names_are_accepted(mappings: MappingSet) -> None:
    event = parse_data_event(data_event("OnExternalUpdated"), mappings)
    assert event is not None and event.operation is Operation.UPDATE


def test_array_of_events_keeps_order_and_marks_unmapped(mappings: MappingSet) -> None:
    body = [data_event(event_id="A"), data_event(entity_name="mserp_custtable"), data_event(event_id="B")]
    parsed = parse_scm_notification(body, mappings)
    assert [e.event_id if e else None for e in parsed] == ["scm:A", None, "scm:B"]


def test_company_falls_back_to_the_business_event_legal_entity(mappings: MappingSet) -> None:
    target = fno_warehouse()
    del target["mserp_dataareaid"]
    event = parse_data_event(data_event(target=target), mappings)
    assert event is not None and event.company == "USMF"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ([], "empty array"),
        ("text", "<body>"),
        ([{"MessageName": "Update"}], r"\[0\]\.EventId"),
        ([data_event(), {**data_event(), "ControlNumber": "5"}], r"\[1\]\.ControlNumber"),
        ({**data_event(), "InputParameters": []}, "no Target"),
        (data_event(target={"mserp_dataareaid": "usmf"}), "mserp_warehouseid"),
        (
            {
                **data_event(),
                "EventTimeIso8601": "soon",
                "InputParameters": data_event(target={"mserp_dataareaid": "usmf", "mserp_warehouseid": "1"})[
                    "InputParameters"
                ],
            },
            "EventTimeIso8601",
        ),
    ],
)
def test_bad_bodies_raise_payload_error_naming_the_place(
    body: object, named: str, mappings: MappingSet
) -> None:
    with pytest.raises(PayloadError, match=named):
        parse_scm_notification(body, mappings)


def test_one_bad_item_rejects_the_whole_array_before_anything_is_used(mappings: MappingSet) -> None:
    with pytest.raises(PayloadError, match=r"\[2\]"):
        parse_scm_notification([data_event(), data_event(), {"EventId": 1}], mappings)


def test_event_built_by_the_sandbox_notifier_parses(mappings: MappingSet) -> None:
    from bridge.sandbox.contracts import Principal, RecordChange
    from bridge.sandbox.notify.fno import DataEventEndpoint
    from bridge.sandbox.notify.fno import data_event as build

    pre = {
        "dataAreaId": "usmf",
        "WarehouseId": "11",
        "WarehouseName": "Old",
        "OperationalSiteId": "1",
        "WarehouseType": "Standard",
        "ModifiedDateTime": "2026-11-20T09:00:00Z",
    }
    post = {**pre, "WarehouseName": "New", "ModifiedDateTime": "2026-11-20T10:00:00Z"}
    change = RecordChange(
        system="fno",
        entity_set="Warehouses",
        logical_name="Warehouse",
        message="Update",
        record_id="dataAreaId='usmf',WarehouseId='11'",
        keys={"dataAreaId": "usmf", "WarehouseId": "11"},
        pre_image=pre,
        post_image=post,
        changed={"WarehouseName": "New"},
        principal=Principal("client", "the-oid", "user"),
        correlation_id="c",
        request_id="r",
        occurred_at=datetime(2026, 11, 20, 10, tzinfo=UTC),
    )
    endpoint = DataEventEndpoint(name="bridge", url="https://127.0.0.1/webhooks/scm")
    body = build(
        change,
        event_id="EV-9",
        control_number=7,
        organization_id="o",
        organization_name="f",
        endpoint=endpoint,
    )
    events = parse_scm_notification([body], mappings)
    assert len(events) == 1 and events[0] is not None
    event = events[0]
    assert (event.event_id, event.company, event.key) == ("scm:EV-9", "USMF", "11")
    assert event.changed == {"WarehouseName": "New"}
    assert event.initiated_by == "the-oid"
    assert event.source_timestamp == datetime(2026, 11, 20, 10, tzinfo=UTC)
