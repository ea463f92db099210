"""Dataverse webhook bodies -> CdsChange / ChangeEvent."""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from bridge.core.errors import PayloadError
from bridge.core.events import Operation, SyncMode, System
from bridge.core.mapping import MappingSet, load_mappings
from bridge.listeners.cds import CdsChange, _guid, _guid_or_none, normalise_attributes, parse_cds_notification
from bridge.listeners.values import iso_z, wcf_date, wcf_iso
from tests.listeners.payloads import (
    SITE_ID,
    USER_ID,
    USMF_ID,
    WH_ID,
    XRM,
    cds_context,
    option,
    oversize,
    ref,
    warehouse_row,
)

ROOT = Path(__file__).resolve().parents[2]
HEADERS = {"x-ms-dynamics-entity-name": "msdyn_warehouse", "x-ms-dynamics-request-name": "Update"}


@pytest.fixture(scope="module")
def mappings() -> MappingSet:
    return load_mappings(ROOT / "mappings")


def parse(body: object, mappings: MappingSet, headers: dict[str, str] | None = None) -> CdsChange:
    change = parse_cds_notification(body, headers or HEADERS, mappings)
    assert change is not None
    return change


def test_update_with_images_gives_changed_columns_and_full_post_image(mappings: MappingSet) -> None:
    target = {
        "msdyn_warehouseid": WH_ID,
        "msdyn_description": "Renamed",
        "modifiedon": "/Date(1700000000000)/",
        "modifiedby": ref("systemuser", USER_ID),
    }
    body = cds_context(
        target=target,
        pre=warehouse_row(),
        post=warehouse_row(msdyn_description="Renamed"),
        request_id="ABCDEF00-0000-4000-8000-000000000001",
    )
    change = parse(body, mappings)
    assert change.operation is Operation.UPDATE and change.mode is SyncMode.ASYNC
    assert change.changed == {"msdyn_description": "Renamed"}  # no primary id, no system columns
    assert change.image is not None and change.image["msdyn_description"] == "Renamed"
    assert change.pre_image is not None and change.pre_image["msdyn_description"] == "Main warehouse"
    assert (change.key, change.company_id, change.record_id) == ("11", USMF_ID, WH_ID)
    assert change.event_id == "cds:abcdef00-0000-4000-8000-000000000001"
    assert change.initiated_by == USER_ID
    assert change.correlation_id == body["CorrelationId"]
    # OperationCreatedOn (milliseconds) orders changes; modifiedon has whole seconds only.
    assert change.source_timestamp == datetime.fromtimestamp(1700000005, UTC)
    assert change.needs_fetch is False


def test_sdk_values_become_web_api_read_form() -> None:
    attrs = {
        "msdyn_warehousetype": option(192350001),
        "msdyn_operationalsite": ref("msdyn_operationalsite", SITE_ID.upper()),
        "msdyn_acquisitioncost": {"__type": f"Money:{XRM}", "Value": 12.5},
        "msdyn_acquisitiondate": "/Date(1506409448000-0700)/",
        "msdyn_serialid": "SN-1",
        "msdyn_modelyear": 2020,
    }
    out = normalise_attributes(attrs, set(), "T")
    assert out == {
        "msdyn_warehousetype": 192350001,
        "_msdyn_operationalsite_value": SITE_ID,
        "msdyn_acquisitioncost": 12.5,
        "msdyn_acquisitiondate": "2017-09-26T07:04:08Z",  # the offset does not move the instant
        "msdyn_serialid": "SN-1",
        "msdyn_modelyear": 2020,
    }


def test_cleared_lookup_arrives_as_null_read_name(mappings: MappingSet) -> None:
    target = {"msdyn_warehouseid": WH_ID, "msdyn_operationalsite": None}
    change = parse(cds_context(target=target, post=warehouse_row(msdyn_operationalsite=None)), mappings)
    assert change.changed == {"_msdyn_operationalsite_value": None}


def test_create_without_images_takes_key_company_and_image_from_target(mappings: MappingSet) -> None:
    change = parse(cds_context("Create"), mappings)
    assert change.operation is Operation.CREATE
    assert change.key == "11" and change.company_id == USMF_ID
    assert change.image is not None and change.image["msdyn_warehousetype"] == 192350000
    assert change.changed["_msdyn_company_value"] == USMF_ID


def test_update_with_pre_image_only_derives_post_image(mappings: MappingSet) -> None:
    target = {"msdyn_warehouseid": WH_ID, "msdyn_primaryaddresscity": "Oslo"}
    change = parse(cds_context(target=target, pre=warehouse_row()), mappings)
    assert change.image is not None
    assert (
        change.image["msdyn_primaryaddresscity"] == "Oslo"
        and change.image["msdyn_description"] == "Main warehouse"
    )
    assert change.key == "11"


def test_update_without_images_has_no_key_so_the_handler_must_read_the_row(mappings: MappingSet) -> None:
    change = parse(cds_context(target={"msdyn_warehouseid": WH_ID, "msdyn_description": "x"}), mappings)
    assert change.key is None and change.company_id is None and change.image is None
    filled = change.with_row({"msdyn_warehouseidentifier": "11", "_msdyn_company_value": USMF_ID})
    assert filled.key == "11" and filled.company_id == USMF_ID
    event = filled.to_event("usmf")
    assert (event.company, event.key, event.source, event.entity) == ("USMF", "11", System.CDS, "warehouse")


def test_delete_takes_key_from_pre_image(mappings: MappingSet) -> None:
    change = parse(cds_context("Delete", pre=warehouse_row()), mappings)
    assert change.operation is Operation.DELETE
    assert change.record_id == WH_ID and change.key == "11" and change.company_id == USMF_ID
    assert change.image is None and change.changed == {}
    assert change.pre_image is not None


def test_synchronous_step_gives_sync_mode(mappings: MappingSet) -> None:
    assert parse(cds_context(mode=0), mappings).mode is SyncMode.SYNC


def test_oversize_variant_needs_fetch(mappings: MappingSet) -> None:
    body = oversize(cds_context(pre=warehouse_row(), post=warehouse_row()))
    change = parse(body, mappings, {**HEADERS, "x-ms-dynamics-msg-size-exceeded": "true"})
    assert change.needs_fetch is True
    assert change.image is None and change.key is None and change.changed == {}
    assert change.record_id == WH_ID
    assert change.source_timestamp == datetime.fromtimestamp(1700000005, UTC)  # OperationCreatedOn
    filled = change.with_row(
        {"msdyn_warehouseidentifier": "11", "_msdyn_company_value": USMF_ID, "msdyn_name": "11"}
    )
    assert filled.image == {
        "msdyn_warehouseidentifier": "11",
        "_msdyn_company_value": USMF_ID,
        "msdyn_name": "11",
    }


def test_unmapped_table_and_other_messages_are_ignored(mappings: MappingSet) -> None:
    assert parse_cds_notification(cds_context(logical="account"), HEADERS, mappings) is None
    assert parse_cds_notification(cds_context(message="Assign"), HEADERS, mappings) is None


def test_event_id_falls_back_to_operation_id_then_a_stable_hash(mappings: MappingSet) -> None:
    body = cds_context()
    body["RequestId"] = None
    assert parse(body, mappings).event_id == f"cds:{body['OperationId']}"
    body["OperationId"] = "00000000-0000-0000-0000-000000000000"
    first, second = parse(body, mappings).event_id, parse(dict(body), mappings).event_id
    assert first.startswith("cds:h:") and first == second


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda b: b.update(Mode="1"), "Mode"),
        (lambda b: b.update(Mode=7), "Mode"),
        (lambda b: b.pop("MessageName"), "MessageName"),
        (lambda b: b.update(InputParameters={"Target": 1}), "InputParameters"),
        (
            lambda b: b["InputParameters"][0]["value"].update(Attributes="x"),
            "InputParameters.Target.Attributes",
        ),
        (
            lambda b: b["InputParameters"][0]["value"]["Attributes"].append(
                {"key": "msdyn_warehousetype", "value": {**option(0), "Value": "x"}}
            ),
            "msdyn_warehousetype.Value",
        ),
        (
            lambda b: b["InputParameters"][0]["value"]["Attributes"].append(
                {"key": "msdyn_operationalsite", "value": ref("msdyn_operationalsite", "nope")}
            ),
            "msdyn_operationalsite.Id",
        ),
        (lambda b: b["InputParameters"][0]["value"].update(LogicalName="account"), "Target.LogicalName"),
        (lambda b: b.update(PrimaryEntityId="not-a-guid"), "PrimaryEntityId"),
        (lambda b: b.update(OperationCreatedOn="yesterday", InputParameters=[]), "OperationCreatedOn"),
    ],
)
def test_wrong_shapes_and_types_raise_payload_error_naming_the_place(
    mutate: Callable[[dict[str, Any]], object], named: str, mappings: MappingSet
) -> None:
    body = cds_context("Create")
    mutate(body)
    with pytest.raises(PayloadError, match=named.replace(".", r"\.")):
        parse_cds_notification(body, HEADERS, mappings)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            {"__type": "OptionSetValue:c", "Value": True},
            "Img.Attributes.col.Value: should be an integer, got True",
        ),
        ({"__type": "Money:c", "Value": "1.5"}, "Img.Attributes.col.Value: should be a number, got '1.5'"),
        ({"__type": "EntityReference:c", "Id": "x" * 36}, f"Img.Attributes.col.Id: not a GUID: {'x' * 36!r}"),
        ({"__type": "EntityReference:c", "Id": None}, "Img.Attributes.col.Id: not a GUID: None"),
    ],
)
def test_bad_sdk_values_name_their_full_location(value: dict[str, Any], message: str) -> None:
    with pytest.raises(PayloadError) as raised:
        normalise_attributes({"ok": "text", "col": value}, (), "Img.Attributes")
    assert str(raised.value) == message


def test_body_that_is_not_an_object_is_rejected(mappings: MappingSet) -> None:
    with pytest.raises(PayloadError, match="<body>"):
        parse_cds_notification([1, 2], HEADERS, mappings)


def test_payload_built_by_the_sandbox_notifier_parses(mappings: MappingSet) -> None:
    from bridge.sandbox.contracts import Principal, RecordChange
    from bridge.sandbox.notify.context import remote_execution_context
    from bridge.sandbox.notify.registrations import Endpoint, Step, StepImage

    pre = {
        "msdyn_warehouseid": WH_ID,
        "msdyn_warehouseidentifier": "11",
        "msdyn_name": "11",
        "msdyn_description": "Old",
        "_msdyn_operationalsite_value": SITE_ID,
        "msdyn_warehousetype": 192350000,
        "_msdyn_company_value": USMF_ID,
        "modifiedon": "2026-11-20T10:00:00Z",
        "_modifiedby_value": USER_ID,
    }
    post = {
        **pre,
        "msdyn_description": "New",
        "_msdyn_operationalsite_value": None,
        "modifiedon": "2026-11-20T10:05:00Z",
    }
    change = RecordChange(
        system="dataverse",
        entity_set="msdyn_warehouses",
        logical_name="msdyn_warehouse",
        message="Update",
        record_id=WH_ID,
        keys={"msdyn_warehouseid": WH_ID},
        pre_image=pre,
        post_image=post,
        changed={"msdyn_description": "New", "msdyn_operationalsite@odata.bind": None},
        principal=Principal("client", "oid", USER_ID),
        correlation_id="c-1",
        request_id="r-1",
        occurred_at=datetime(2026, 11, 20, 10, 5, tzinfo=UTC),
    )
    endpoint = Endpoint("e", "bridge", "https://127.0.0.1/webhooks/cds", 4, "k")
    step = Step(
        "s",
        "dualwrite",
        "Update",
        "msdyn_warehouse",
        0,
        40,
        1,
        None,
        endpoint,
        (StepImage("PreImage", True, False, None), StepImage("PostImage", False, True, None)),
    )
    body = remote_execution_context(
        change, step, organization_id="o", organization_name="org", business_unit_id="b"
    )
    parsed = parse(body, mappings)
    assert parsed.mode is SyncMode.SYNC and parsed.event_id == "cds:r-1"
    async_body = remote_execution_context(
        change,
        dataclasses.replace(step, mode=1),
        organization_id="o",
        organization_name="org",
        business_unit_id="b",
    )
    assert async_body["ParentContext"]["Stage"] == 30
    assert parse(async_body, mappings).changed == parsed.changed
    assert parsed.changed == {"msdyn_description": "New", "_msdyn_operationalsite_value": None}
    assert parsed.image is not None and parsed.image["_msdyn_company_value"] == USMF_ID
    assert parsed.image["modifiedon"] == "2026-11-20T10:05:00Z"
    assert parsed.key == "11" and parsed.source_timestamp == datetime(2026, 11, 20, 10, 5, tzinfo=UTC)


def test_published_sample_shape_with_parent_context_and_offset_date_parses(mappings: MappingSet) -> None:
    """The sample body of MicrosoftDocs/powerapps-docs,
    powerapps-docs/developer/data-platform/use-webhooks.md (an asynchronous PostOperation Update
    step), on a mapped table: ParentContext filled with the stage-30 context, OperationCreatedOn with
    an offset, SharedVariables in the parent."""
    body = cds_context(
        target=warehouse_row(msdyn_description="New"), post=warehouse_row(msdyn_description="New")
    )
    body["OperationCreatedOn"] = "/Date(1506409448000-0700)/"
    parent = cds_context(target={"msdyn_description": "New", "msdyn_warehouseid": WH_ID})
    parent_inputs = parent["InputParameters"] + [{"key": "SuppressDuplicateDetection", "value": False}]
    changed_types = [
        {
            "__type": "KeyValuePairOfstringstring:#System.Collections.Generic",
            "key": "msdyn_warehouse",
            "value": "Update",
        }
    ]
    parent.update(
        {
            "InputParameters": parent_inputs,
            "OperationCreatedOn": body["OperationCreatedOn"],
            "RequestId": None,
            "SharedVariables": [{"key": "ChangedEntityTypes", "value": changed_types}],
            "Stage": 30,
        }
    )
    body["ParentContext"] = parent
    change = parse(body, mappings)
    assert change.image is not None and change.image["msdyn_description"] == "New"
    # The offset says where the writer was; the milliseconds are the instant (UTC).
    assert change.source_timestamp == datetime.fromtimestamp(1506409448, UTC)


CANONICAL = "8286946c-4c3c-531a-9ff8-4b8e86fc8584"


@pytest.mark.parametrize(
    "spelling",
    [
        CANONICAL,
        CANONICAL.upper(),  # the fast path must still lower-case
        "{" + CANONICAL.upper() + "}",
        CANONICAL.replace("-", ""),
        "urn:uuid:" + CANONICAL,
        "8286946c4c3c-531a-9ff8-4b8e-86fc8584",  # hyphens out of place: uuid.UUID still accepts it
        uuid.UUID(CANONICAL),  # not text at all
    ],
)
def test_every_accepted_guid_spelling_gives_the_canonical_form(spelling: object) -> None:
    assert _guid(spelling, "X") == str(uuid.UUID(str(spelling))) == CANONICAL
    assert _guid_or_none(spelling) == CANONICAL


@pytest.mark.parametrize(
    "bad",
    [CANONICAL + "\n", CANONICAL[:-1], CANONICAL[:-1] + "g", CANONICAL.replace("-", "_"), 42],
)
def test_near_guids_are_still_rejected(bad: object) -> None:
    with pytest.raises(PayloadError, match=rf"^X\.Id: not a GUID: {re.escape(repr(bad))}$"):
        _guid(bad, "X.Id")
    assert _guid_or_none(bad) is None


def test_guid_or_none_of_nothing_is_none() -> None:
    assert _guid_or_none(None) is None and _guid_or_none("") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/Date(1506409448000-0700)/", "2017-09-26T07:04:08Z"),  # the offset does not move the instant
        ("/Date(1506409448000+0130)/", "2017-09-26T07:04:08Z"),
        ("/Date(-1)/", "1969-12-31T23:59:59Z"),
        ("/Date(-62135596800000)/", "1-01-01T00:00:00Z"),  # strftime's unpadded year, as before
        ("/Date(253402300799999)/", "9999-12-31T23:59:59Z"),
        ("/Date(253402300800000)/", None),  # past year 9999
        ("/Date(-62135596800001)/", None),  # before year 1
        ("/Date(99999999999999999999999)/", None),
        ("/Date(12x)/", None),
        ("/Date()/", None),
        ("Date(1506409448000)", None),
        ("u0000059", None),
    ],
)
def test_wcf_iso_is_iso_z_of_wcf_date_also_when_cached(text: str, expected: str | None) -> None:
    moment = wcf_date(text)
    assert (None if moment is None else iso_z(moment)) == expected
    assert wcf_iso(text) == expected
    assert wcf_iso(text) == expected  # a second time, from the cache


@pytest.mark.parametrize(
    "headers",
    [
        {"X-MS-Dynamics-Msg-Size-Exceeded": "true", "X-Ms-Correlation-Request-Id": "c-2"},
        CIMultiDictProxy(
            CIMultiDict(
                [
                    ("X-MS-Dynamics-Msg-Size-Exceeded", "true"),
                    ("x-ms-correlation-request-id", "c-1"),
                    ("X-Ms-Correlation-Request-Id", "c-2"),  # repeated: the last wins, as before
                ]
            )
        ),
    ],
)
def test_headers_are_read_case_insensitively(headers: Mapping[str, str], mappings: MappingSet) -> None:
    body = cds_context()
    body["CorrelationId"] = None
    change = parse_cds_notification(body, headers, mappings)
    assert change is not None and change.needs_fetch is True and change.correlation_id == "c-2"
    plain = parse_cds_notification(body, {"x-ms-dynamics-msg-size-exceeded-not": "1"}, mappings)
    assert plain is not None and plain.needs_fetch is False and plain.correlation_id is None
