"""Value maps and EntityMap transforms, on the shipped warehouse and customer asset maps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.core.entitymap import Direction
from bridge.core.errors import RejectedError
from bridge.core.events import System
from bridge.core.mapping import EntityMap, MappingSet, load_mappings
from bridge.core.valuemaps import FNO_EMPTY_DATE, DateMap, EnumMap, NoYesMap, NumberMap

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
SITE = "5f0c2a3e-8a51-4d7e-9c3b-0d3c2b1a9e77"
CATEGORY = "9b1b7a0e-2f4c-4c55-8d1e-7a6b5c4d3e2f"
CDS, SCM = System.CDS, System.SCM


@pytest.fixture(scope="module")
def maps() -> MappingSet:
    return load_mappings(MAPPINGS)


@pytest.fixture
def warehouse(maps: MappingSet) -> EntityMap:
    m = maps.get("warehouse")
    assert m is not None
    return m


@pytest.fixture
def asset(maps: MappingSet) -> EntityMap:
    m = maps.get("customer_asset")
    assert m is not None
    return m


def cds_warehouse(**over: Any) -> dict[str, Any]:
    row = {
        "msdyn_warehouseid": "0a1b2c3d-0000-4000-8000-000000000001",
        "msdyn_warehouseidentifier": "W1",
        "msdyn_name": "W1",
        "msdyn_description": "Main warehouse",
        "_msdyn_operationalsite_value": SITE,
        "msdyn_warehousetype": 192350001,
        "msdyn_useadvancedwarehousemanagementprocesses": True,
        "_msdyn_mainrefillingwarehouse_value": None,
        "msdyn_primaryaddresscity": "Seattle",
        "msdyn_primaryaddresscountryregionid": "USA",
        "_msdyn_company_value": "0a1b2c3d-0000-4000-8000-0000000000cc",
        "modifiedon": "2024-05-01T10:00:00Z",
    }
    return row | over


def scm_warehouse(**over: Any) -> dict[str, Any]:
    row = {
        "dataAreaId": "usmf",
        "WarehouseId": "W1",
        "WarehouseName": "Main warehouse",
        "OperationalSiteId": "S1",
        "WarehouseType": "Transit",
        "AreAdvancedWarehouseManagementProcessesEnabled": "No",
        "MainRefillingWarehouseId": "",
        "PrimaryAddressCity": "",
        "PrimaryAddressCountryRegionId": "USA",
        "ModifiedDateTime": "2024-05-01T10:00:00Z",
    }
    return row | over


# ---------------------------------------------------------------- value maps
def test_enum_map_converts_both_ways_and_rejects_unknown_values() -> None:
    vm = EnumMap("t", {"Standard": 192350000, "Transit": 192350002})
    assert vm.convert(SCM, "Transit") == 192350002
    assert vm.convert(CDS, 192350000) == "Standard"
    with pytest.raises(RejectedError, match="no counterpart"):
        vm.convert(SCM, "Bogus")
    with pytest.raises(RejectedError, match="not an option-set integer"):
        vm.normalise(CDS, True)


def test_noyes_map_pairs_labels_with_booleans_and_null_bool_is_no() -> None:
    vm = NoYesMap()
    assert vm.convert(SCM, vm.normalise(SCM, "Yes")) is True
    assert vm.convert(CDS, False) == "No"
    assert vm.convert(CDS, None) == "No"
    with pytest.raises(RejectedError):
        vm.normalise(SCM, "yes")
    with pytest.raises(RejectedError):
        vm.normalise(CDS, "true")


def test_date_map_handles_fno_empty_date_and_midnight_forms() -> None:
    vm = DateMap()
    assert vm.normalise(SCM, FNO_EMPTY_DATE) is None
    assert vm.normalise(SCM, "2024-03-05T00:00:00.000+00:00") == "2024-03-05T00:00:00Z"
    assert vm.convert(SCM, "2024-03-05T00:00:00Z") == "2024-03-05"
    assert vm.convert(CDS, "2024-03-05") == "2024-03-05T00:00:00Z"
    assert vm.write(SCM, None) == FNO_EMPTY_DATE
    assert vm.write(CDS, None) is None
    with pytest.raises(RejectedError, match="midnight"):
        vm.normalise(SCM, "2024-03-05T13:00:00Z")
    with pytest.raises(RejectedError, match="not a date"):
        vm.normalise(CDS, "05/03/2024")


@pytest.mark.parametrize(("raw", "norm"), [(5, 5), (5.0, 5), ("12.50", 12.5), ("", None), (None, None)])
def test_number_map_normalises_ints_and_decimals(raw: Any, norm: Any) -> None:
    value = NumberMap().normalise(SCM, raw)
    assert value == norm and type(value) is type(norm)


@pytest.mark.parametrize("raw", [True, "abc", "NaN", [1]])
def test_number_map_rejects_non_numbers(raw: Any) -> None:
    with pytest.raises(RejectedError):
        NumberMap().normalise(CDS, raw)


# ---------------------------------------------------------------- directions and columns
def test_fields_from_respects_direction(warehouse: EntityMap) -> None:
    to_scm = {f.scm for f in warehouse.fields_from(CDS)}
    to_cds = {f.cds for f in warehouse.fields_from(SCM)}
    assert "WarehouseId" not in to_scm  # to_cds only
    assert "msdyn_name" in to_cds


def test_source_columns_use_read_names_for_lookups(warehouse: EntityMap) -> None:
    cols = warehouse.source_columns(CDS)
    assert "_msdyn_operationalsite_value" in cols
    assert "msdyn_operationalsite" not in cols
    assert "msdyn_name" not in cols  # written by the bridge only


def test_touches_mapped_ignores_unmapped_and_one_way_columns(warehouse: EntityMap) -> None:
    assert not warehouse.touches_mapped(CDS, {"modifiedon": "x", "versionnumber": 3})
    assert not warehouse.touches_mapped(CDS, {"msdyn_name": "other"})
    assert warehouse.touches_mapped(CDS, {"msdyn_operationalsite": SITE})  # logical name accepted
    assert warehouse.touches_mapped(SCM, {"WarehouseName": "x"})
    assert not warehouse.touches_mapped(SCM, {"ModifiedDateTime": "x"})


def test_select_columns_include_key_company_and_mapped(warehouse: EntityMap) -> None:
    cds = set(warehouse.select_columns(CDS))
    assert {"msdyn_warehouseid", "msdyn_warehouseidentifier", "_msdyn_company_value", "msdyn_name"} <= cds
    assert {"dataAreaId", "WarehouseId", "OperationalSiteId"} <= set(warehouse.select_columns(SCM))


# ---------------------------------------------------------------- project
def test_project_normalises_and_keeps_only_mapped_columns(warehouse: EntityMap) -> None:
    proj = warehouse.project(CDS, cds_warehouse(_msdyn_operationalsite_value=SITE.upper()))
    assert proj["_msdyn_operationalsite_value"] == SITE
    assert "modifiedon" not in proj and "msdyn_warehouseidentifier" not in proj
    scm = warehouse.project(SCM, scm_warehouse())
    assert scm["MainRefillingWarehouseId"] is None and scm["PrimaryAddressCity"] is None
    assert scm["WarehouseId"] == "W1"


def test_project_treats_missing_dates_as_empty(asset: EntityMap) -> None:
    proj = asset.project(SCM, {"Name": "Pump", "AcquisitionDate": FNO_EMPTY_DATE})
    assert proj["AcquisitionDate"] is None and proj["ReplacementDate"] is None


# ---------------------------------------------------------------- to_target
def test_cds_to_scm_payload_carries_every_mapped_field(warehouse: EntityMap) -> None:
    payload = warehouse.to_target(CDS, cds_warehouse(), {"msdyn_operationalsite": "S1"})
    # Every field of the published map that flows to F&O, whether the source row had it or not.
    assert set(payload) == {f.scm for f in warehouse.fields if f.direction is not Direction.TO_CDS}
    assert (
        payload
        | {
            "WarehouseName": "Main warehouse",
            "OperationalSiteId": "S1",
            "WarehouseType": "Quarantine",
            "AreAdvancedWarehouseManagementProcessesEnabled": "Yes",
            "MainRefillingWarehouseId": "",  # no reference: F&O strings are not nullable
            "QuarantineWarehouseId": "",
            "PrimaryAddressCity": "Seattle",
            "PrimaryAddressCountryRegionId": "USA",
            "IsFallbackWarehouse": "No",  # a null Dataverse boolean is F&O's No
            "MaximumBatchPickingListQuantity": 0,  # an empty Dataverse number is F&O's 0
        }
        == payload
    )


def test_scm_to_cds_payload_binds_lookups_and_copies_key_to_name(warehouse: EntityMap) -> None:
    payload = warehouse.to_target(SCM, scm_warehouse(), {"msdyn_operationalsite": SITE})
    assert payload["msdyn_name"] == "W1"
    assert payload["msdyn_operationalsite@odata.bind"] == f"/msdyn_operationalsites({SITE})"
    assert payload["msdyn_mainrefillingwarehouse@odata.bind"] is None
    assert payload["msdyn_warehousetype"] == 192350002
    assert payload["msdyn_useadvancedwarehousemanagementprocesses"] is False
    assert payload["msdyn_primaryaddresscity"] is None
    assert "msdyn_warehouseidentifier" not in payload and "msdyn_company@odata.bind" not in payload


def test_default_fills_null_for_its_target_side(warehouse: EntityMap) -> None:
    payload = warehouse.to_target(
        CDS, cds_warehouse(msdyn_warehousetype=None), {"msdyn_operationalsite": "S1"}
    )
    assert payload["WarehouseType"] == "Standard"


def test_lookup_navigation_name_comes_from_the_map(asset: EntityMap) -> None:
    image = {"Name": "Pump", "MaintenanceAssetTypeId": "PUMPS", "ParentMaintenanceAssetId": ""}
    payload = asset.to_target(SCM, image, {"msdyn_customerassetcategory": CATEGORY})
    assert payload["msdyn_CustomerAssetCategory@odata.bind"] == f"/msdyn_customerassetcategories({CATEGORY})"
    assert payload["msdyn_ParentAsset@odata.bind"] is None
    assert payload["msdyn_replacementdate"] is None


def test_dates_to_scm_use_the_empty_date(asset: EntityMap) -> None:
    image = {"msdyn_name": "Pump", "msdyn_acquisitiondate": "2024-03-05", "msdyn_acquisitioncost": 1500.0}
    payload = asset.to_target(CDS, image, {})
    assert payload["AcquisitionDate"] == "2024-03-05T00:00:00Z"
    assert payload["ReplacementDate"] == FNO_EMPTY_DATE
    assert payload["AcquisitionCost"] == 1500


def test_lookups_from_describe_what_to_resolve(asset: EntityMap) -> None:
    specs = {s.name: s for s in asset.lookups_from(CDS)}
    parent = specs["msdyn_parentasset"]
    assert parent.self_reference and parent.source_column == "_msdyn_parentasset_value"
    assert parent.target_column == "ParentMaintenanceAssetId"
    category = specs["msdyn_customerassetcategory"]
    assert not category.self_reference and category.cds_key_field == "msdyn_maintenanceassettypeid"
    assert category.value({"_msdyn_customerassetcategory_value": CATEGORY.upper()}) == CATEGORY
    assert category.value({"_msdyn_customerassetcategory_value": None}) is None


def test_unresolved_lookup_with_a_value_is_a_programming_error(warehouse: EntityMap) -> None:
    with pytest.raises(ValueError, match="msdyn_operationalsite"):
        warehouse.to_target(CDS, cds_warehouse(), {})


def test_unconvertible_value_is_rejected(warehouse: EntityMap) -> None:
    with pytest.raises(RejectedError, match="warehouse_type"):
        warehouse.to_target(SCM, scm_warehouse(WarehouseType="Mobile"), {"msdyn_operationalsite": SITE})


def test_malformed_lookup_guid_is_rejected(warehouse: EntityMap) -> None:
    with pytest.raises(RejectedError, match="GUID"):
        warehouse.project(CDS, cds_warehouse(_msdyn_operationalsite_value="not-a-guid"))


# ---------------------------------------------------------------- write_form, synced_projection, names
def test_write_form_restores_a_projection_in_write_form(warehouse: EntityMap, asset: EntityMap) -> None:
    proj = warehouse.project(CDS, cds_warehouse())
    payload = warehouse.write_form(CDS, proj)
    assert payload["msdyn_operationalsite@odata.bind"] == f"/msdyn_operationalsites({SITE})"
    assert "_msdyn_operationalsite_value" not in payload
    scm = asset.write_form(SCM, asset.project(SCM, {"Name": "Pump"}))
    assert scm["ReplacementDate"] == FNO_EMPTY_DATE and scm["Name"] == "Pump"


def test_synced_projection_matches_a_fresh_projection(warehouse: EntityMap) -> None:
    payload = warehouse.to_target(SCM, scm_warehouse(), {"msdyn_operationalsite": SITE})
    previous = warehouse.project(CDS, cds_warehouse(msdyn_description="old"))
    synced = warehouse.synced_projection(CDS, payload, previous)
    assert synced["_msdyn_operationalsite_value"] == SITE
    assert synced["msdyn_description"] == "Main warehouse"
    assert synced["msdyn_warehousetype"] == 192350002


def test_scm_property_maps_data_event_attribute_names(warehouse: EntityMap) -> None:
    assert warehouse.scm_property("mserp_warehouseid") == "WarehouseId"
    assert warehouse.scm_property("mserp_dataareaid") == "dataAreaId"
    assert warehouse.scm_property("mserp_areadvancedwarehousemanagementprocessesenabled") == (
        "AreAdvancedWarehouseManagementProcessesEnabled"
    )
    assert warehouse.scm_property("mserp_unknown") is None


def test_number_map_writes_an_empty_dataverse_number_to_fno_as_zero() -> None:
    numbers = NumberMap()
    assert numbers.write(System.SCM, None) == 0  # F&O integers cannot be empty
    assert numbers.write(System.CDS, None) is None  # Dataverse numbers can


def test_optional_number_map_treats_fno_zero_as_empty() -> None:
    from bridge.core.valuemaps import OptionalNumberMap

    years = OptionalNumberMap()
    assert years.normalise(System.SCM, 0) is None  # unset on F&O
    assert years.normalise(System.SCM, 2020) == 2020
    assert years.normalise(System.CDS, 0) == 0  # a real 0 on Dataverse stays 0
    assert years.write(System.SCM, None) == 0


def test_number_text_map_carries_fno_text_as_a_dataverse_number(asset: EntityMap) -> None:
    from bridge.core.valuemaps import NumberTextMap

    years = NumberTextMap()
    assert years.normalise(System.SCM, "2020") == 2020
    assert years.normalise(System.SCM, "") is None  # F&O's empty text
    assert years.normalise(System.CDS, 2020) == 2020
    assert years.write(System.SCM, 2020) == "2020"  # digits, never a JSON number
    assert years.write(System.SCM, None) == ""
    assert years.write(System.CDS, 2020) == 2020
    with pytest.raises(RejectedError, match="is not text"):
        years.normalise(System.SCM, 2020)
    with pytest.raises(RejectedError, match="is not a number"):
        years.normalise(System.SCM, "MMXX")
    # Through the shipped asset map, both ways.
    to_scm = asset.to_target(CDS, {"msdyn_name": "Pump", "msdyn_modelyear": 2020}, {})
    assert to_scm["ModelYear"] == "2020"
    to_cds = asset.to_target(SCM, {"Name": "Pump", "ModelYear": "2020"}, {})
    assert to_cds["msdyn_modelyear"] == 2020


def test_empty_text_and_references_go_to_fno_as_empty_strings(warehouse: EntityMap) -> None:
    emap = warehouse
    image = {
        "msdyn_description": None,
        "_msdyn_operationalsite_value": None,
        "_msdyn_mainrefillingwarehouse_value": None,
    }
    payload = emap.to_target(System.CDS, image, {})
    assert payload["WarehouseName"] == "" and payload["OperationalSiteId"] == ""
    assert payload["MainRefillingWarehouseId"] == ""
