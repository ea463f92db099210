"""``EntityMetadata`` and ``AttributeMetadata`` objects of the Dataverse ``EntityDefinitions`` entity
set, generated from the schema tables (``query.py`` serves them).

Shapes: MicrosoftDocs/powerapps-docs, powerapps-docs/developer/data-platform/webapi/
query-metadata-web-api.md (``DisplayName`` as a ``Label`` with ``LocalizedLabels`` and
``UserLocalizedLabel``; ``MetadataId`` always returned; ``OptionSet.Options`` items with ``Value``,
``Label``, ``Description``, ``Color``, ``IsManaged``, ``MetadataId``, ``HasChanged``). Attribute
types and ``@odata.type`` names follow the AttributeMetadata type hierarchy of the Web API
reference (``StringAttributeMetadata``, ``PicklistAttributeMetadata``, ``LookupAttributeMetadata``...).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from bridge.sandbox.metadata.labels import (
    BOOLEAN_LABELS,
    display_name,
    option_labels,
    primary_name,
)
from bridge.sandbox.schema import Column, Kind, Table

CRM = "Microsoft.Dynamics.CRM"
LANGUAGE = 1033
_NS = uuid.uuid5(uuid.NAMESPACE_URL, "dualwrite-sandbox:metadata")

# Kind -> (AttributeType, AttributeMetadata subtype)
_ATTRIBUTE_TYPE: dict[Kind, tuple[str, str]] = {
    Kind.STRING: ("String", "StringAttributeMetadata"),
    Kind.MEMO: ("Memo", "MemoAttributeMetadata"),
    Kind.INT: ("Integer", "IntegerAttributeMetadata"),
    Kind.DECIMAL: ("Decimal", "DecimalAttributeMetadata"),
    Kind.BOOL: ("Boolean", "BooleanAttributeMetadata"),
    Kind.DATE: ("DateTime", "DateTimeAttributeMetadata"),
    Kind.DATETIME: ("DateTime", "DateTimeAttributeMetadata"),
    Kind.GUID: ("Uniqueidentifier", "UniqueIdentifierAttributeMetadata"),
    Kind.OPTIONSET: ("Picklist", "PicklistAttributeMetadata"),
    Kind.LOOKUP: ("Lookup", "LookupAttributeMetadata"),
}
# Columns whose type the name decides: the row version and the state column.
_BY_NAME: dict[str, tuple[str, str]] = {
    "versionnumber": ("BigInt", "BigIntAttributeMetadata"),
    "statecode": ("State", "StateAttributeMetadata"),
}


def metadata_id(*parts: str) -> str:
    return str(uuid.uuid5(_NS, ":".join(parts)))


def label(text: str, *parts: str) -> dict[str, Any]:
    localized = {
        "Label": text,
        "LanguageCode": LANGUAGE,
        "IsManaged": True,
        "MetadataId": metadata_id("label", *parts),
        "HasChanged": None,
    }
    return {"LocalizedLabels": [localized], "UserLocalizedLabel": localized}


def _empty_label() -> dict[str, Any]:
    return {"LocalizedLabels": [], "UserLocalizedLabel": None}


def attribute_logical_name(column: Column) -> str:
    """``_modifiedby_value`` (a system lookup kept as a GUID column) is the ``modifiedby`` attribute."""
    name = column.name
    return name[1:-6] if name.startswith("_") and name.endswith("_value") else name


def attribute_type(column: Column) -> tuple[str, str]:
    if column.name in _BY_NAME:
        return _BY_NAME[column.name]
    if column.kind is Kind.GUID and column.name.startswith("_"):
        return ("Lookup", "LookupAttributeMetadata")
    return _ATTRIBUTE_TYPE[column.kind]


def entity_metadata(table: Table) -> dict[str, Any]:
    logical = table.logical_name
    return {
        "MetadataId": metadata_id("entity", logical),
        "LogicalName": logical,
        "SchemaName": logical,
        "EntitySetName": table.entity_set,
        "LogicalCollectionName": table.entity_set,
        "PrimaryIdAttribute": table.primary_id,
        "PrimaryNameAttribute": primary_name(table),
        "DisplayName": label(display_name(logical), logical),
        "IsCustomEntity": False,
        "IsActivity": False,
    }


def _option(column: Column, table: Table, value: int, text: str) -> dict[str, Any]:
    return {
        "Value": value,
        "Label": label(text, table.logical_name, column.name, str(value)),
        "Description": _empty_label(),
        "Color": None,
        "IsManaged": True,
        "MetadataId": None,
        "HasChanged": None,
    }


def option_set(column: Column, table: Table) -> dict[str, Any]:
    """The ``OptionSet`` navigation target of a picklist, state or two-option attribute."""
    name = f"{table.logical_name}_{column.name}"
    body: dict[str, Any] = {
        "MetadataId": metadata_id("optionset", table.logical_name, column.name),
        "Name": name,
        "IsGlobal": False,
        "IsCustomOptionSet": False,
        "IsManaged": True,
        "DisplayName": label(display_name(column.name), "optionset", name),
        "Description": _empty_label(),
    }
    if column.kind is Kind.BOOL:
        body["OptionSetType"] = "Boolean"
        body["TrueOption"] = _option(column, table, 1, BOOLEAN_LABELS[True])
        body["FalseOption"] = _option(column, table, 0, BOOLEAN_LABELS[False])
    else:
        body["OptionSetType"] = "State" if column.name == "statecode" else "Picklist"
        body["Options"] = [_option(column, table, v, text) for v, text in option_labels(column)]
    return body


def attribute_metadata(column: Column, table: Table, logical_of: Mapping[str, str]) -> dict[str, Any]:
    logical = attribute_logical_name(column)
    attr_type, subtype = attribute_type(column)
    required = (
        "SystemRequired"
        if column.name == table.primary_id
        else ("ApplicationRequired" if column.required else "None")
    )
    body: dict[str, Any] = {
        "@odata.type": f"#{CRM}.{subtype}",
        "MetadataId": metadata_id("attribute", table.logical_name, logical),
        "LogicalName": logical,
        "SchemaName": logical,
        "EntityLogicalName": table.logical_name,
        "AttributeType": attr_type,
        "AttributeTypeName": {"Value": f"{attr_type}Type"},
        "DisplayName": label(display_name(logical), table.logical_name, logical),
        "IsPrimaryId": column.name == table.primary_id,
        "IsPrimaryName": column.name == primary_name(table),
        "IsValidForCreate": not column.read_only,
        "IsValidForUpdate": not column.read_only and not column.immutable and column.name != table.primary_id,
        "IsValidForRead": True,
        "RequiredLevel": {
            "Value": required,
            "CanBeChanged": required != "SystemRequired",
            "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings",
        },
    }
    if column.kind in (Kind.STRING, Kind.MEMO):
        body["MaxLength"] = column.max_length
    if column.kind in (Kind.INT, Kind.DECIMAL) and column.name not in _BY_NAME:
        body["MinValue"] = column.minimum
        body["MaxValue"] = column.maximum
    if column.kind is Kind.DATE:
        body["Format"] = "DateOnly"
        body["DateTimeBehavior"] = {"Value": "DateOnly"}
    elif column.kind is Kind.DATETIME:
        body["Format"] = "DateAndTime"
        body["DateTimeBehavior"] = {"Value": "UserLocal"}
    if attr_type == "Lookup":
        body["Targets"] = [lookup_target(column, logical_of)]
    return body


def lookup_target(column: Column, logical_of: Mapping[str, str]) -> str:
    """The logical name of the table a lookup points to (system lookups point to systemuser);
    ``logical_of`` maps entity sets to logical names (``cdm_companies`` → ``cdm_company``)."""
    if column.kind is Kind.GUID:
        return "systemuser"
    target = column.target or ""
    return logical_of.get(target, target)


def cast_types(column: Column) -> set[str]:
    """Names a cast segment may use to reach this attribute (``...PicklistAttributeMetadata``)."""
    _, subtype = attribute_type(column)
    return {subtype, f"{CRM}.{subtype}"}


def has_option_set(column: Column) -> bool:
    return column.kind in (Kind.OPTIONSET, Kind.BOOL)
