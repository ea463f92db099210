"""Hand-built notification bodies of the documented shapes (protocols.md, common.md)."""

from __future__ import annotations

import uuid
from typing import Any

XRM = "http://schemas.microsoft.com/xrm/2011/Contracts"
ZERO = "00000000-0000-0000-0000-000000000000"
USMF_ID = "6f1c0d7e-3f55-4c1a-9a52-2f0f1a7d0a01"
USER_ID = "a1b2c3d4-0000-4000-8000-000000000001"
WH_ID = "0b5e8a9c-1d2e-4f3a-8b4c-5d6e7f809102"
SITE_ID = "1c2d3e4f-5a6b-4c7d-8e9f-a0b1c2d3e4f5"


def kv(pairs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": v} for k, v in pairs.items()]


def ref(logical: str, guid: str) -> dict[str, Any]:
    return {
        "__type": f"EntityReference:{XRM}",
        "Id": guid,
        "KeyAttributes": [],
        "LogicalName": logical,
        "Name": None,
        "RowVersion": None,
    }


def option(value: int) -> dict[str, Any]:
    return {"__type": f"OptionSetValue:{XRM}", "Value": value}


def entity(logical: str, guid: str, attrs: dict[str, Any]) -> dict[str, Any]:
    return {
        "__type": f"Entity:{XRM}",
        "Attributes": kv(attrs),
        "EntityState": None,
        "FormattedValues": [],
        "Id": guid,
        "KeyAttributes": [],
        "LogicalName": logical,
        "RelatedEntities": [],
        "RowVersion": None,
    }


def warehouse_row(**over: Any) -> dict[str, Any]:
    """A full msdyn_warehouse row as the SDK serialises it."""
    row: dict[str, Any] = {
        "msdyn_warehouseid": WH_ID,
        "msdyn_warehouseidentifier": "11",
        "msdyn_name": "11",
        "msdyn_description": "Main warehouse",
        "msdyn_operationalsite": ref("msdyn_operationalsite", SITE_ID),
        "msdyn_warehousetype": option(192350000),
        "msdyn_useadvancedwarehousemanagementprocesses": True,
        "msdyn_company": ref("cdm_company", USMF_ID),
        "modifiedon": "/Date(1700000000000)/",
        "modifiedby": ref("systemuser", USER_ID),
    }
    row.update(over)
    return row


def cds_context(
    message: str = "Update",
    *,
    logical: str = "msdyn_warehouse",
    record_id: str = WH_ID,
    target: dict[str, Any] | None = None,
    pre: dict[str, Any] | None = None,
    post: dict[str, Any] | None = None,
    mode: int = 1,
    request_id: str | None = None,
    user: str = USER_ID,
) -> dict[str, Any]:
    if message == "Delete":
        target_value: dict[str, Any] = ref(logical, record_id)
    else:
        target_value = entity(logical, record_id, target if target is not None else warehouse_row())
    return {
        "BusinessUnitId": str(uuid.uuid4()),
        "CorrelationId": "9e1f0a3b-2c4d-4e5f-8a9b-0c1d2e3f4a5b",
        "Depth": 1,
        "InitiatingUserId": user,
        "InputParameters": kv({"Target": target_value}),
        "IsExecutingOffline": False,
        "IsInTransaction": mode == 0,
        "IsOfflinePlayback": False,
        "IsolationMode": 1,
        "MessageName": message,
        "Mode": mode,
        "OperationCreatedOn": "/Date(1700000005000)/",
        "OperationId": str(uuid.uuid4()),
        "OrganizationId": str(uuid.uuid4()),
        "OrganizationName": "org",
        "OutputParameters": kv({"id": record_id}) if message == "Create" else [],
        "OwningExtension": {
            "Id": str(uuid.uuid4()),
            "KeyAttributes": [],
            "LogicalName": "sdkmessageprocessingstep",
            "Name": "dualwrite: Update of msdyn_warehouse",
            "RowVersion": None,
        },
        "ParentContext": None,
        "PostEntityImages": kv({"PostImage": entity(logical, record_id, post)}) if post is not None else [],
        "PreEntityImages": kv({"PreImage": entity(logical, record_id, pre)}) if pre is not None else [],
        "PrimaryEntityId": record_id,
        "PrimaryEntityName": logical,
        "RequestId": request_id or str(uuid.uuid4()),
        "SecondaryEntityName": "none",
        "SharedVariables": [],
        "Stage": 40,
        "UserId": user,
    }


def oversize(context: dict[str, Any]) -> dict[str, Any]:
    """The >256 KB variant: Dataverse removes these four keys."""
    dropped = ("ParentContext", "InputParameters", "PreEntityImages", "PostEntityImages")
    return {k: v for k, v in context.items() if k not in dropped}


def fno_warehouse(**over: Any) -> dict[str, Any]:
    """Warehouse attributes as a data event carries them (mserp_ + property lower-cased)."""
    row: dict[str, Any] = {
        "mserp_dataareaid": "usmf",
        "mserp_warehouseid": "11",
        "mserp_warehousename": "Main warehouse",
        "mserp_operationalsiteid": "1",
        "mserp_warehousetype": "Standard",
        "mserp_areadvancedwarehousemanagementprocessesenabled": "Yes",
        "mserp_primaryaddresscity": "Seattle",
        "mserp_modifieddatetime": "2026-11-20T10:00:00Z",
    }
    row.update(over)
    return row


def data_event(
    message: str = "Update",
    *,
    target: dict[str, Any] | None = None,
    pre: dict[str, Any] | None = None,
    event_id: str | None = None,
    entity_name: str = "mserp_warehouse",
    oid: str = "5f0c6b8e-7a4d-4b2e-9c1f-3d2e1f0a9b8c",
    pre_in: str = "InputParameters",
) -> dict[str, Any]:
    """A data event. ``pre_in``: where the pre-image travels: ``"InputParameters"`` (as ``PreImage``
    next to ``Target``, the shape of dynamics-365-unified-operations-public,
    articles/fin-ops-core/dev-itpro/business-events/data-events.md) or ``"PreEntityImages"`` (the
    older shape the bridge still reads)."""
    attrs = target if target is not None else fno_warehouse()
    event_id = event_id or str(uuid.uuid4())
    inputs = {"Target": entity(entity_name, ZERO, attrs)}
    images: list[dict[str, Any]] = []
    if pre is not None and pre_in == "InputParameters":
        inputs["PreImage"] = entity(entity_name, ZERO, pre)
    elif pre is not None:
        images = kv({"PreImage": entity(entity_name, ZERO, pre)})
    return {
        "BusinessUnitId": ZERO,
        "CorrelationId": str(uuid.uuid4()),
        "Depth": 1,
        "InitiatingUserId": ZERO,
        "InputParameters": kv(inputs),
        "IsExecutingOffline": False,
        "IsInTransaction": False,
        "IsOfflinePlayback": False,
        "IsolationMode": 1,
        "MessageName": message,
        "Mode": 1,
        "OperationCreatedOn": "/Date(1700000000000+0000)/",
        "OperationId": event_id,
        "OrganizationId": str(uuid.uuid4()),
        "OrganizationName": "fno",
        "OutputParameters": [],
        "OwningExtension": {
            "Id": str(uuid.uuid4()),
            "KeyAttributes": [],
            "LogicalName": "sdkmessageprocessingstep",
            "Name": "bridge",
            "RowVersion": None,
        },
        "ParentContext": None,
        "PostEntityImages": [],
        "PreEntityImages": images,
        "PrimaryEntityId": ZERO,
        "PrimaryEntityName": entity_name,
        "RequestId": None,
        "SecondaryEntityName": "none",
        "SharedVariables": [],
        "Stage": 40,
        "UserId": ZERO,
        "BusinessEventId": "Warehouse_Updated",
        "EventId": event_id,
        "EventTime": "/Date(1700000001000)/",
        "EventTimeIso8601": "2026-11-20T10:00:01Z",
        "ControlNumber": 5637144576,
        "BusinessEventLegalEntity": "USMF",
        "InitiatingUserAADObjectId": oid,
        "MajorVersion": 0,
        "MinorVersion": 0,
        "ContextRecordSubject": "",
        "ParentContextRecordSubjects": [],
    }
