"""Building Dataverse ``RemoteExecutionContext`` JSON from a ``RecordChange`` (pure logic).

Rows arrive in Web API JSON form (lookups as ``_<col>_value``, option sets as ints, dates as ISO
strings); the context carries them as SDK types: ``EntityReference``, ``OptionSetValue``,
``/Date(ms)/``. Collections are lists of ``{"key", "value"}`` pairs.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from bridge.sandbox.contracts import RecordChange
from bridge.sandbox.notify.common import dotnet_date
from bridge.sandbox.notify.registrations import Step, changed_columns
from bridge.sandbox.schema import (
    DATAVERSE_REGISTRATION_TABLES,
    DATAVERSE_TABLES,
    Column,
    Kind,
    Table,
    table_by_set,
)

XRM = "http://schemas.microsoft.com/xrm/2011/Contracts"
SIZE_LIMIT = 256 * 1024
_ALL_TABLES = DATAVERSE_TABLES + DATAVERSE_REGISTRATION_TABLES
_LOGICAL = {t.entity_set: t.logical_name for t in _ALL_TABLES}
# System lookups that are not schema columns but travel on every row.
_SYSTEM_LOOKUPS = {"modifiedby": "systemuser", "createdby": "systemuser", "ownerid": "systemuser"}


def kv(pairs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": v} for k, v in pairs.items()]


def entity_reference(logical_name: str, record_id: str) -> dict[str, Any]:
    return {
        "__type": f"EntityReference:{XRM}",
        "Id": record_id,
        "KeyAttributes": [],
        "LogicalName": logical_name,
        "Name": None,
        "RowVersion": None,
    }


def _to_datetime(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def sdk_value(column: Column | None, value: Any) -> Any:
    """One Web API value as the SDK serialises it inside a RemoteExecutionContext."""
    if value is None or column is None:
        return value
    if column.kind is Kind.OPTIONSET:
        return {"__type": f"OptionSetValue:{XRM}", "Value": value}
    if column.kind in (Kind.DATE, Kind.DATETIME) and isinstance(value, str):
        parsed = _to_datetime(value)
        return dotnet_date(parsed) if parsed else value
    return value


def attributes_of(
    row: dict[str, Any],
    table: Table | None,
    only: set[str] | frozenset[str] | None = None,
    *,
    keep_null: bool = False,
) -> dict[str, Any]:
    """Web API row → {logical column name: SDK value}."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if "@" in key:  # annotations (@odata.etag, formatted values)
            continue
        name = key
        lookup_target: str | None = None
        if key.startswith("_") and key.endswith("_value"):
            name = key[1:-6]
            column = table.column(name) if table else None
            if column is not None and column.target:
                lookup_target = _LOGICAL.get(column.target, column.target)
            else:
                lookup_target = _SYSTEM_LOOKUPS.get(name)
        if only is not None and name.lower() not in only:
            continue
        if value is None and not keep_null:
            continue
        if lookup_target is not None:
            out[name] = entity_reference(lookup_target, str(value)) if value is not None else None
        else:
            out[name] = sdk_value(table.column(name) if table else None, value)
    return out


def entity(logical_name: str, record_id: str, attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        "__type": f"Entity:{XRM}",
        "Attributes": kv(attributes),
        "EntityState": None,
        "FormattedValues": [],
        "Id": record_id,
        "KeyAttributes": [],
        "LogicalName": logical_name,
        "RelatedEntities": [],
        "RowVersion": None,
    }


def target_of(change: RecordChange, table: Table | None) -> dict[str, Any]:
    if change.message == "Delete":
        return entity_reference(change.logical_name, change.record_id)
    post = change.post_image or {}
    if change.message == "Create":
        attrs = attributes_of(post, table)
    else:
        # An update's Target: the changed columns, the primary key and the system columns.
        wanted = changed_columns(change, table) | {"modifiedon", "modifiedby", "versionnumber"}
        attrs = attributes_of(post, table, wanted, keep_null=True)
    if table is not None and table.primary_id:
        attrs[table.primary_id] = change.record_id
    return entity(change.logical_name, change.record_id, attrs)


_SYSTEM_COLUMNS = frozenset({"modifiedon", "modifiedby", "versionnumber", "createdon", "createdby"})


def parent_target_of(change: RecordChange, table: Table | None) -> dict[str, Any]:
    """The core operation's Target: what the caller sent, and the primary key (no system columns),
    as in the ParentContext of the published sample (powerapps-docs, use-webhooks.md)."""
    if change.message == "Delete":
        return entity_reference(change.logical_name, change.record_id)
    sent = changed_columns(change, table) - _SYSTEM_COLUMNS
    attrs = attributes_of(change.post_image or {}, table, sent, keep_null=True)
    if table is not None and table.primary_id:
        attrs[table.primary_id] = change.record_id
    return entity(change.logical_name, change.record_id, attrs)


def images_of(
    change: RecordChange, step: Step, table: Table | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    pre: dict[str, Any] = {}
    post: dict[str, Any] = {}
    for image in step.images:
        if image.pre and change.pre_image is not None and change.message != "Create":
            pre[image.alias] = entity(
                change.logical_name,
                change.record_id,
                attributes_of(change.pre_image, table, image.attributes),
            )
        if image.post and change.post_image is not None and change.message != "Delete":
            post[image.alias] = entity(
                change.logical_name,
                change.record_id,
                attributes_of(change.post_image, table, image.attributes),
            )
    return kv(pre), kv(post)


def remote_execution_context(
    change: RecordChange,
    step: Step,
    *,
    organization_id: str,
    organization_name: str,
    business_unit_id: str,
    operation_id: str | None = None,
) -> dict[str, Any]:
    """The body of one webhook call.

    An asynchronous step's context nests the core operation's (stage 30, MainOperation) as
    ``ParentContext``, as Dataverse does (the published sample in powerapps-docs, use-webhooks.md,
    an asynchronous PostOperation step); a synchronous step runs inside that operation, whose
    context has no parent at depth 1. ``OperationCreatedOn`` is written with the server's offset
    (``/Date(ms+0000)/``), as in the sample."""
    table = table_by_set(_ALL_TABLES, change.entity_set)
    pre, post = images_of(change, step, table)
    output = kv({"id": change.record_id}) if change.message == "Create" else []
    operation_id = operation_id or str(uuid.uuid4())
    common = {
        "BusinessUnitId": business_unit_id,
        "CorrelationId": change.correlation_id,
        "Depth": change.depth,
        "InitiatingUserId": change.principal.user_id,
        "IsExecutingOffline": False,
        "IsOfflinePlayback": False,
        "IsolationMode": 1,
        "MessageName": change.message,
        "OperationCreatedOn": dotnet_date(change.occurred_at, offset=True),
        "OperationId": operation_id,
        "OrganizationId": organization_id,
        "OrganizationName": organization_name,
        "OwningExtension": {
            "Id": step.id,
            "KeyAttributes": [],
            "LogicalName": "sdkmessageprocessingstep",
            "Name": step.name,
            "RowVersion": None,
        },
        "PrimaryEntityId": change.record_id,
        "PrimaryEntityName": change.logical_name,
        "SecondaryEntityName": "none",
        "UserId": change.principal.user_id,
    }
    parent = None if step.synchronous else parent_context(change, table, common)
    return {
        **common,
        "InputParameters": kv({"Target": target_of(change, table)}),
        "IsInTransaction": step.synchronous,
        "Mode": step.mode,
        "OutputParameters": output,
        "ParentContext": parent,
        "PostEntityImages": post,
        "PreEntityImages": pre,
        "RequestId": change.request_id,
        "SharedVariables": [],
        "Stage": step.stage,
    }


def parent_context(change: RecordChange, table: Table | None, common: dict[str, Any]) -> dict[str, Any]:
    """The MainOperation context an asynchronous step's context carries as ``ParentContext``."""
    inputs: dict[str, Any] = {"Target": parent_target_of(change, table)}
    if change.message != "Delete":
        inputs["SuppressDuplicateDetection"] = False
    changed_types = [
        {
            "__type": "KeyValuePairOfstringstring:#System.Collections.Generic",
            "key": change.logical_name,
            "value": change.message,
        }
    ]
    return {
        **common,
        "InputParameters": kv(inputs),
        "IsInTransaction": False,
        "Mode": 1,
        "OutputParameters": [],
        "ParentContext": None,
        "PostEntityImages": [],
        "PreEntityImages": [],
        "RequestId": None,
        "SharedVariables": kv({"ChangedEntityTypes": changed_types}),
        "Stage": 30,
    }


_OVERSIZE_DROPPED = ("ParentContext", "InputParameters", "PreEntityImages", "PostEntityImages")


def fit_size(context: dict[str, Any], encode: Any) -> tuple[bytes, bool]:
    """The body to send, and whether the 256 KB rule removed the bulky parts."""
    body: bytes = encode(context)
    if len(body) <= SIZE_LIMIT:
        return body, False
    trimmed = {k: v for k, v in context.items() if k not in _OVERSIZE_DROPPED}
    return encode(trimmed), True
