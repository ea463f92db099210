"""The F&O OData service document and CSDL ``$metadata``, generated from the schema tables.

Shapes (MicrosoftDocs/dynamics-365-unified-operations-public,
articles/fin-ops-core/dev-itpro/data-entities/odata.md): entity types and enums are in the
namespace ``Microsoft.Dynamics.DataEntities`` ("Enums are under namespace ..."), ``EnumType`` is
in ``$metadata``, every key field (``dataAreaId`` included) is a ``PropertyRef``, navigation
properties link entities, and the generated client's container is ``Resources``.

Navigation properties: F&O names them per entity in AOT; the sandbox derives one per reference
field (``OperationalSiteId`` → ``OperationalSite``) with a referential constraint on the company and
the referenced id. ``dataAreaId`` itself gets none.
"""

from __future__ import annotations

from collections.abc import Iterable
from xml.etree import ElementTree as ET

from bridge.sandbox.metadata.labels import fno_enum_type
from bridge.sandbox.schema import Column, Kind, Table

EDMX = "http://docs.oasis-open.org/odata/ns/edmx"
EDM = "http://docs.oasis-open.org/odata/ns/edm"
NAMESPACE = "Microsoft.Dynamics.DataEntities"

_EDM_TYPE = {
    Kind.STRING: "Edm.String",
    Kind.MEMO: "Edm.String",
    Kind.INT: "Edm.Int32",
    Kind.DECIMAL: "Edm.Decimal",
    Kind.BOOL: "Edm.Boolean",
    Kind.DATE: "Edm.DateTimeOffset",  # F&O dates travel as midnight datetimes (schema.py)
    Kind.DATETIME: "Edm.DateTimeOffset",
    Kind.GUID: "Edm.Guid",
}


def navigation_name(column: Column) -> str:
    """``MainRefillingWarehouseId`` → ``MainRefillingWarehouse``."""
    return column.name[:-2] if column.name.endswith("Id") else f"{column.name}Entity"


def navigations(table: Table) -> dict[str, Column]:
    """Navigation property name → the reference field it follows (the company field excluded)."""
    return {
        navigation_name(c): c
        for c in table.columns
        if c.target and c.target_key and c.name != table.company_column
    }


def edm_type(column: Column) -> str:
    if column.kind is Kind.ENUM:
        return f"{NAMESPACE}.{fno_enum_type(column)}"
    return _EDM_TYPE.get(column.kind, "Edm.String")


def service_document(tables: Iterable[Table], base_url: str) -> dict[str, object]:
    return {
        "@odata.context": f"{base_url}$metadata",
        "value": [{"name": t.entity_set, "kind": "EntitySet", "url": t.entity_set} for t in tables],
    }


def _sub(parent: ET.Element, tag: str, **attrib: str) -> ET.Element:
    return ET.SubElement(parent, f"{{{EDM}}}{tag}", attrib)


def _enum_types(schema: ET.Element, tables: tuple[Table, ...]) -> None:
    seen: dict[str, tuple[str | int, ...]] = {}
    for t in tables:
        for c in t.columns:
            if c.kind is Kind.ENUM and fno_enum_type(c) not in seen:
                seen[fno_enum_type(c)] = c.options
    for name, options in seen.items():
        enum = _sub(schema, "EnumType", Name=name)
        for value, label in enumerate(options):
            _sub(enum, "Member", Name=str(label), Value=str(value))


def _entity_type(schema: ET.Element, table: Table, by_set: dict[str, Table]) -> None:
    et = _sub(schema, "EntityType", Name=table.logical_name)
    key = _sub(et, "Key")
    for name in table.key:
        _sub(key, "PropertyRef", Name=name)
    for c in table.columns:
        attrs = {"Name": c.name, "Type": edm_type(c), "Nullable": "false"}
        if c.kind in (Kind.STRING, Kind.MEMO) and c.max_length:
            attrs["MaxLength"] = str(c.max_length)
        if c.kind is Kind.DECIMAL:
            attrs["Scale"] = "Variable"
        _sub(et, "Property", **attrs)
    for nav_name, c in navigations(table).items():
        target = by_set.get(c.target or "")
        if target is None:
            continue
        nav = _sub(et, "NavigationProperty", Name=nav_name, Type=f"{NAMESPACE}.{target.logical_name}")
        if table.company_column and target.company_column:
            _sub(
                nav,
                "ReferentialConstraint",
                Property=table.company_column,
                ReferencedProperty=target.company_column,
            )
        _sub(nav, "ReferentialConstraint", Property=c.name, ReferencedProperty=c.target_key or "")


def metadata_document(tables: Iterable[Table]) -> bytes:
    tables = tuple(tables)
    by_set = {t.entity_set: t for t in tables}
    ET.register_namespace("edmx", EDMX)
    ET.register_namespace("", EDM)
    root = ET.Element(f"{{{EDMX}}}Edmx", {"Version": "4.0"})
    services = ET.SubElement(root, f"{{{EDMX}}}DataServices")
    schema = _sub(services, "Schema", Namespace=NAMESPACE)
    _enum_types(schema, tables)
    for table in tables:
        _entity_type(schema, table, by_set)
    container = _sub(schema, "EntityContainer", Name="Resources")
    for table in tables:
        es = _sub(
            container, "EntitySet", Name=table.entity_set, EntityType=f"{NAMESPACE}.{table.logical_name}"
        )
        for nav_name, c in navigations(table).items():
            if c.target in by_set:
                _sub(es, "NavigationPropertyBinding", Path=nav_name, Target=c.target or "")
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
