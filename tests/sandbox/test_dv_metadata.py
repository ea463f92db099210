"""Dataverse metadata over real HTTP: the service document, CSDL $metadata and EntityDefinitions.

Expected shapes come from MicrosoftDocs/powerapps-docs, powerapps-docs/developer/data-platform/webapi/
``web-api-service-documents.md``, ``web-api-navigation-properties.md``, ``web-api-properties.md`` and
``query-metadata-web-api.md`` (named at each test).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from xml.etree import ElementTree as ET

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bridge.sandbox.dataverse.service import DataverseService
from bridge.sandbox.metadata.labels import has_labels
from bridge.sandbox.schema import DATAVERSE_REGISTRATION_TABLES, DATAVERSE_TABLES, Kind
from tests.sandbox.test_odata_harness import serve

B = "/api/data/v9.2/"
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
Client = TestClient[web.Request, web.Application]
ALL_TABLES = (*DATAVERSE_TABLES, *DATAVERSE_REGISTRATION_TABLES)


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with serve(DataverseService()) as c:
        yield c


async def test_service_document_lists_every_entity_set(client: Client) -> None:
    # web-api-service-documents.md: {"@odata.context": ".../$metadata", "value": [{"name", "kind", "url"}]}
    body = await (await client.get(B)).json()
    assert body["@odata.context"].endswith("/api/data/v9.2/$metadata")
    names = {v["name"] for v in body["value"]}
    assert {t.entity_set for t in ALL_TABLES} | {"EntityDefinitions"} == names
    assert {"name": "msdyn_warehouses", "kind": "EntitySet", "url": "msdyn_warehouses"} in body["value"]


async def test_metadata_is_csdl_generated_from_the_schema(client: Client) -> None:
    r = await client.get(B + "$metadata")
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/xml")
    root = ET.fromstring(await r.read())
    schema = root.find(f"{{http://docs.oasis-open.org/odata/ns/edmx}}DataServices/{EDM}Schema")
    assert schema is not None
    # web-api-service-documents.md: Namespace="Microsoft.Dynamics.CRM" Alias="mscrm"
    assert (schema.get("Namespace"), schema.get("Alias")) == ("Microsoft.Dynamics.CRM", "mscrm")
    types = {et.get("Name"): et for et in schema.findall(f"{EDM}EntityType")}
    for table in ALL_TABLES:
        et = types[table.logical_name]
        assert et.get("BaseType") == "mscrm.crmbaseentity"
        keys = [p.get("Name") for p in et.findall(f"{EDM}Key/{EDM}PropertyRef")]
        assert keys == [table.primary_id]
        props = {p.get("Name"): p.get("Type") for p in et.findall(f"{EDM}Property")}
        for c in table.columns:
            name = f"_{c.name}_value" if c.kind is Kind.LOOKUP else c.name
            assert name in props, (table.logical_name, name)
    wh = {p.get("Name"): p.get("Type") for p in types["msdyn_warehouse"].findall(f"{EDM}Property")}
    # web-api-properties.md: choices are Edm.Int32, lookups are _<name>_value Edm.Guid, no EnumType.
    assert wh["msdyn_warehousetype"] == "Edm.Int32"
    assert wh["_msdyn_operationalsite_value"] == "Edm.Guid"
    assert wh["msdyn_useadvancedwarehousemanagementprocesses"] == "Edm.Boolean"
    assert schema.findall(f"{EDM}EnumType") == []
    # web-api-navigation-properties.md: a single-valued navigation property with a ReferentialConstraint
    nav = next(
        n
        for n in types["msdyn_warehouse"].findall(f"{EDM}NavigationProperty")
        if n.get("Name") == "msdyn_operationalsite"
    )
    assert nav.get("Type") == "mscrm.msdyn_operationalsite"
    rc = nav.find(f"{EDM}ReferentialConstraint")
    assert rc is not None
    assert (rc.get("Property"), rc.get("ReferencedProperty")) == (
        "_msdyn_operationalsite_value",
        "msdyn_operationalsiteid",
    )
    sets = {
        es.get("Name"): es.get("EntityType") for es in schema.findall(f"{EDM}EntityContainer/{EDM}EntitySet")
    }
    assert sets["msdyn_warehouses"] == "Microsoft.Dynamics.CRM.msdyn_warehouse"
    actions = {a.get("Name") for a in schema.findall(f"{EDM}Action")}
    assert {"CreateMultiple", "UpdateMultiple", "UpsertMultiple"} <= actions


async def test_entity_definitions_collection_select_and_filter(client: Client) -> None:
    # query-metadata-web-api.md: $select and $filter on EntityDefinitions; MetadataId always returned.
    r = await client.get(
        B + "EntityDefinitions",
        params={"$select": "LogicalName,EntitySetName", "$filter": "LogicalName eq 'msdyn_warehouse'"},
    )
    body = await r.json()
    assert r.status == 200, body
    assert body["@odata.context"].endswith("$metadata#EntityDefinitions(LogicalName,EntitySetName)")
    [only] = body["value"]
    assert set(only) == {"LogicalName", "EntitySetName", "MetadataId"}
    assert only["EntitySetName"] == "msdyn_warehouses"
    # An unknown name is an empty collection, not a 404.
    r = await client.get(B + "EntityDefinitions", params={"$filter": "LogicalName eq 'nosuchtable'"})
    assert r.status == 200 and (await r.json())["value"] == []
    all_rows = (await (await client.get(B + "EntityDefinitions", params={"$select": "LogicalName"})).json())[
        "value"
    ]
    assert {v["LogicalName"] for v in all_rows} == {t.logical_name for t in ALL_TABLES}
    bad = await client.get(B + "EntityDefinitions", params={"$select": "NoSuchProperty"})
    assert bad.status == 400 and (await bad.json())["error"]["code"] == "0x80060888"


async def test_entity_definition_by_key_and_display_name_label(client: Client) -> None:
    r = await client.get(
        B + "EntityDefinitions(LogicalName='msdyn_warehouse')",
        params={"$select": "DisplayName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute"},
    )
    body = await r.json()
    assert r.status == 200, body
    # query-metadata-web-api.md: DisplayName is a Label with LocalizedLabels and UserLocalizedLabel.
    label = body["DisplayName"]["UserLocalizedLabel"]
    assert label["LanguageCode"] == 1033 and label["Label"]
    assert body["DisplayName"]["LocalizedLabels"] == [label]
    assert (body["PrimaryIdAttribute"], body["PrimaryNameAttribute"]) == ("msdyn_warehouseid", "msdyn_name")
    by_id = await client.get(
        B + f"EntityDefinitions({body['MetadataId']})", params={"$select": "LogicalName"}
    )
    assert (await by_id.json())["LogicalName"] == "msdyn_warehouse"
    missing = await client.get(B + "EntityDefinitions(LogicalName='nosuchtable')")
    assert missing.status == 404


async def test_attributes_and_picklist_cast_with_option_labels(client: Client) -> None:
    r = await client.get(
        B + "EntityDefinitions(LogicalName='msdyn_warehouse')/Attributes",
        params={
            "$select": "LogicalName,AttributeType",
            "$filter": "AttributeType eq Microsoft.Dynamics.CRM.AttributeTypeCode'Lookup'",
        },
    )
    body = await r.json()
    assert r.status == 200, body
    lookups = {a["LogicalName"] for a in body["value"]}
    assert {"msdyn_operationalsite", "msdyn_company", "modifiedby"} <= lookups
    # query-metadata-web-api.md: cast to PicklistAttributeMetadata, $expand=OptionSet($select=Options)
    r = await client.get(
        B
        + "EntityDefinitions(LogicalName='msdyn_warehouse')/Attributes/"
        + "Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
        params={"$select": "LogicalName", "$expand": "OptionSet($select=Options)"},
    )
    body = await r.json()
    assert r.status == 200, body
    assert [a["LogicalName"] for a in body["value"]] == [
        "msdyn_warehousetype"
    ]  # statecode is a State attribute
    options = body["value"][0]["OptionSet"]["Options"]
    first = options[0]
    assert set(first) == {"Value", "Label", "Description", "Color", "IsManaged", "MetadataId", "HasChanged"}
    assert [(o["Value"], o["Label"]["UserLocalizedLabel"]["Label"]) for o in options] == [
        (192350000, "Standard"),
        (192350001, "Quarantine"),
        (192350002, "Transit"),
    ]


async def test_single_attribute_and_its_option_set_segment(client: Client) -> None:
    base = B + "EntityDefinitions(LogicalName='serviceendpoint')/Attributes(LogicalName='contract')"
    r = await client.get(
        base + "/Microsoft.Dynamics.CRM.PicklistAttributeMetadata/OptionSet", params={"$select": "Options"}
    )
    body = await r.json()
    assert r.status == 200, body
    assert body["@odata.context"].endswith("/OptionSet(Options)/$entity")
    labels = {o["Value"]: o["Label"]["UserLocalizedLabel"]["Label"] for o in body["Options"]}
    # powerapps-docs/developer/data-platform/reference/entities/serviceendpoint.md: Contract 8 = Webhook
    assert labels[8] == "Webhook"
    plain = await (await client.get(base, params={"$select": "LogicalName,AttributeType"})).json()
    assert plain["AttributeType"] == "Picklist" and plain["@odata.type"].endswith("PicklistAttributeMetadata")
    wrong = await client.get(
        B
        + "EntityDefinitions(LogicalName='serviceendpoint')/Attributes(LogicalName='name')/"
        + "Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
    )
    assert wrong.status == 404


def test_every_choice_column_has_labels() -> None:
    """A column added to the schema without labels would show numbers as its labels: catch it here."""
    missing = [
        (t.logical_name, c.name)
        for t in ALL_TABLES
        for c in t.columns
        if c.kind is Kind.OPTIONSET and not has_labels(c)
    ]
    assert missing == []


async def test_entity_definition_expands_attributes_with_select_and_filter(client: Client) -> None:
    # query-metadata-web-api.md: EntityDefinitions(LogicalName='account')?$select=LogicalName
    #   &$expand=Attributes($select=LogicalName;$filter=AttributeType eq
    #   Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist')
    r = await client.get(
        B + "EntityDefinitions(LogicalName='msdyn_paymentterm')",
        params={
            "$select": "LogicalName",
            "$expand": "Attributes($select=LogicalName;"
            "$filter=AttributeType eq Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist')",
        },
    )
    body = await r.json()
    assert r.status == 200, body
    assert body["LogicalName"] == "msdyn_paymentterm"
    assert [a["LogicalName"] for a in body["Attributes"]] == ["msdyn_paymentmethodtype"]
    assert set(body["Attributes"][0]) == {"LogicalName", "MetadataId", "@odata.type"}
