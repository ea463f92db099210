"""The Dataverse Web API service document and CSDL ``$metadata``, generated from the schema tables.

Shapes (MicrosoftDocs/powerapps-docs, powerapps-docs/developer/data-platform/webapi/):
- ``web-api-service-documents.md``: the service document lists every entity set as
  ``{"name", "kind": "EntitySet", "url"}``; ``$metadata`` has one ``Schema Namespace=
  "Microsoft.Dynamics.CRM" Alias="mscrm"``.
- ``web-api-entitytypes.md`` / ``web-api-navigation-properties.md``: entity types derive from the
  abstract ``mscrm.crmbaseentity``, key on the primary id, lookups are ``_<name>_value`` ``Edm.Guid``
  properties plus a single-valued ``NavigationProperty`` with a ``ReferentialConstraint``.
- ``web-api-properties.md``: the primitive types used. Choice columns are plain ``Edm.Int32``:
  Dataverse puts no ``EnumType`` for option sets in CSDL (their labels live in ``EntityDefinitions``
  attribute metadata, see ``entitydefs.py``).
- ``bulk-operations.md``: ``CreateMultiple``/``UpdateMultiple``/``UpsertMultiple`` are actions bound
  to a collection of the table's type.
"""

from __future__ import annotations

from collections.abc import Iterable
from xml.etree import ElementTree as ET

from bridge.sandbox.schema import Column, Kind, Table

EDMX = "http://docs.oasis-open.org/odata/ns/edmx"
EDM = "http://docs.oasis-open.org/odata/ns/edm"
NAMESPACE = "Microsoft.Dynamics.CRM"
ALIAS = "mscrm"
BULK_ACTIONS = ("CreateMultiple", "UpdateMultiple", "UpsertMultiple")

_EDM_TYPE = {
    Kind.STRING: "Edm.String",
    Kind.MEMO: "Edm.String",
    Kind.INT: "Edm.Int32",
    Kind.DECIMAL: "Edm.Decimal",
    Kind.BOOL: "Edm.Boolean",
    Kind.DATE: "Edm.Date",
    Kind.DATETIME: "Edm.DateTimeOffset",
    Kind.GUID: "Edm.Guid",
    Kind.OPTIONSET: "Edm.Int32",
    Kind.LOOKUP: "Edm.Guid",
}
_INT64 = {"versionnumber"}  # rowversion: Edm.Int64 on the real system


def property_name(column: Column) -> str:
    return f"_{column.name}_value" if column.kind is Kind.LOOKUP else column.name


def edm_type(column: Column) -> str:
    return "Edm.Int64" if column.name in _INT64 else _EDM_TYPE[column.kind]


def service_document(
    tables: Iterable[Table], base_url: str, extra_sets: Iterable[str] = ()
) -> dict[str, object]:
    names = sorted({*(t.entity_set for t in tables), *extra_sets})
    return {
        "@odata.context": f"{base_url}$metadata",
        "value": [{"name": n, "kind": "EntitySet", "url": n} for n in names],
    }


def _sub(parent: ET.Element, tag: str, **attrib: str) -> ET.Element:
    return ET.SubElement(parent, f"{{{EDM}}}{tag}", attrib)


def _entity_type(schema: ET.Element, table: Table, by_set: dict[str, Table]) -> None:
    et = _sub(schema, "EntityType", Name=table.logical_name, BaseType=f"{ALIAS}.crmbaseentity")
    if table.primary_id:
        _sub(_sub(et, "Key"), "PropertyRef", Name=table.primary_id)
    for c in table.columns:
        attrs = {"Name": property_name(c), "Type": edm_type(c)}
        if c.kind is Kind.DECIMAL:
            attrs["Scale"] = "Variable"
        prop = _sub(et, "Property", **attrs)
        if c.read_only or c.kind is Kind.LOOKUP:
            # web-api-properties.md: lookup properties and system columns are computed, read-only.
            _sub(prop, "Annotation", Term="Org.OData.Core.V1.Computed", Bool="true")
    for c in table.columns:
        target = by_set.get(c.target or "")
        if c.kind is not Kind.LOOKUP or not c.nav or target is None:
            continue
        nav = _sub(et, "NavigationProperty", Name=c.nav, Type=f"{ALIAS}.{target.logical_name}")
        _sub(
            nav,
            "ReferentialConstraint",
            Property=property_name(c),
            ReferencedProperty=target.primary_id or "",
        )


def _bulk_actions(schema: ET.Element) -> None:
    for name in BULK_ACTIONS:
        action = _sub(schema, "Action", Name=name, IsBound="true")
        collection = f"Collection({ALIAS}.crmbaseentity)"
        _sub(action, "Parameter", Name="entityset", Type=collection, Nullable="false")
        _sub(action, "Parameter", Name="Targets", Type=collection, Nullable="false")
        if name == "CreateMultiple":
            _sub(action, "ReturnType", Type=f"{ALIAS}.CreateMultipleResponse", Nullable="false")
    response = _sub(schema, "ComplexType", Name="CreateMultipleResponse")
    _sub(response, "Property", Name="Ids", Type="Collection(Edm.Guid)", Nullable="false")
    whoami = _sub(schema, "ComplexType", Name="WhoAmIResponse")
    for prop in ("BusinessUnitId", "UserId", "OrganizationId"):
        _sub(whoami, "Property", Name=prop, Type="Edm.Guid", Nullable="false")
    fn = _sub(schema, "Function", Name="WhoAmI")
    _sub(fn, "ReturnType", Type=f"{ALIAS}.WhoAmIResponse", Nullable="false")


def metadata_document(tables: Iterable[Table]) -> bytes:
    """The CSDL XML of every table given (generated per call: it cannot drift from the schema)."""
    tables = tuple(tables)
    by_set = {t.entity_set: t for t in tables}
    ET.register_namespace("edmx", EDMX)
    ET.register_namespace("", EDM)
    root = ET.Element(f"{{{EDMX}}}Edmx", {"Version": "4.0"})
    services = ET.SubElement(root, f"{{{EDMX}}}DataServices")
    schema = _sub(services, "Schema", Namespace=NAMESPACE, Alias=ALIAS)
    _sub(schema, "EntityType", Name="crmbaseentity", Abstract="true")
    for table in tables:
        _entity_type(schema, table, by_set)
    _bulk_actions(schema)
    container = _sub(schema, "EntityContainer", Name="System")
    for table in tables:
        es = _sub(
            container, "EntitySet", Name=table.entity_set, EntityType=f"{NAMESPACE}.{table.logical_name}"
        )
        for c in table.columns:
            if c.kind is Kind.LOOKUP and c.nav and c.target in by_set:
                _sub(es, "NavigationPropertyBinding", Path=c.nav, Target=c.target or "")
    _sub(container, "FunctionImport", Name="WhoAmI", Function=f"{NAMESPACE}.WhoAmI")
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
