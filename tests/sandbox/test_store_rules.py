"""The SQLite store and the schema-derived business rules, without HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bridge.sandbox.rules import Rule, build_rules
from bridge.sandbox.schema import DATAVERSE_TABLES, FNO_TABLES
from bridge.sandbox.store import Store


@pytest.fixture
def fno_store() -> Iterator[Store]:
    store = Store(FNO_TABLES)
    yield store
    store.close()


class _Resolver:
    def __init__(self, store: Store) -> None:
        self.store = store

    def exists(self, entity_set: str, where: Any) -> bool:
        return self.store.exists(self.store.table(entity_set), where)


def _put(store: Store, entity_set: str, row: dict[str, Any]) -> None:
    store.begin()
    store.insert(store.table(entity_set), row)
    store.commit()


def test_reader_sees_only_committed_rows_while_a_write_is_open(fno_store: Store) -> None:
    ts = fno_store.table("LegalEntities")
    fno_store.begin()
    fno_store.insert(ts, {"LegalEntityId": "usmf", "Name": "x"})
    assert fno_store.get(ts, {"LegalEntityId": "usmf"}) is None  # reader: not yet committed
    assert fno_store.get(ts, {"LegalEntityId": "usmf"}, writer=True) is not None
    fno_store.rollback()
    assert fno_store.get(ts, {"LegalEntityId": "usmf"}, writer=True) is None


def test_keys_compare_case_insensitively_like_the_real_systems(fno_store: Store) -> None:
    _put(fno_store, "LegalEntities", {"LegalEntityId": "usmf", "Name": "x"})
    assert fno_store.exists(fno_store.table("LegalEntities"), {"LegalEntityId": "USMF"})


def test_dump_is_sorted_by_key_whatever_the_insert_order(fno_store: Store) -> None:
    for le in ("zz", "aa", "mm"):
        _put(fno_store, "LegalEntities", {"LegalEntityId": le, "Name": le})
    assert [r["LegalEntityId"] for r in fno_store.dump()["LegalEntities"]] == ["aa", "mm", "zz"]
    fno_store.clear()
    assert fno_store.dump()["LegalEntities"] == []


def test_booleans_come_back_as_booleans() -> None:
    store = Store(DATAVERSE_TABLES)
    ts = store.table("msdyn_customerassetcategories")
    store.begin()
    store.insert(
        ts,
        {
            "msdyn_customerassetcategoryid": "a",
            "msdyn_maintenanceassettypeid": "T",
            "msdyn_name": "n",
            "msdyn_calculatekpitotal": True,
            "_msdyn_company_value": "c",
        },
    )
    store.commit()
    found = store.get(ts, {"msdyn_customerassetcategoryid": "a"})
    store.close()
    assert found is not None and found[0]["msdyn_calculatekpitotal"] is True


DV = build_rules(DATAVERSE_TABLES, "dataverse")
FO = build_rules(FNO_TABLES, "fno")


@pytest.mark.parametrize(
    ("rules", "entity_set", "values", "rule"),
    [
        (FO, "Warehouses", {"WarehouseId": "WAREHOUSE-LONG-ID"}, Rule.MAX_LENGTH),
        (FO, "Warehouses", {"WarehouseId": 12}, Rule.TYPE),
        (FO, "Warehouses", {"WarehouseType": "Bogus"}, Rule.OPTION),
        (FO, "Warehouses", {"Nope": 1}, Rule.UNKNOWN),
        (FO, "Warehouses", {"ModifiedDateTime": "2024-01-01T00:00:00Z"}, Rule.READ_ONLY),
        (FO, "PaymentTerms", {"CutoffDayOfMonth": 32}, Rule.RANGE),
        (FO, "AssetMaintenanceAssets", {"AcquisitionDate": "2024-02-30"}, Rule.TYPE),
        (DV, "msdyn_warehouses", {"msdyn_warehousetype": 5}, Rule.OPTION),
        (DV, "msdyn_warehouses", {"msdyn_useadvancedwarehousemanagementprocesses": "yes"}, Rule.TYPE),
        (DV, "msdyn_customerassets", {"msdyn_modelyear": 2200}, Rule.RANGE),
        (DV, "msdyn_customerassets", {"msdyn_modelyear": True}, Rule.TYPE),
        (DV, "msdyn_customerassets", {"msdyn_acquisitioncost": -1}, Rule.RANGE),
        (DV, "msdyn_paymentterms", {"versionnumber": 5}, Rule.READ_ONLY),
    ],
)
def test_value_rules(rules: Any, entity_set: str, values: dict[str, Any], rule: Rule) -> None:
    existing = {"WarehouseId": "W1"}  # an update: required columns need not be given
    _, violations = rules[entity_set].check_write(values, existing)
    assert [v.rule for v in violations] == [rule]


def test_lengths_differ_between_the_systems_on_purpose() -> None:
    long_id = "WAREHOUSE-LONG-ID"
    _, dv = DV["msdyn_warehouses"].check_write({"msdyn_warehouseidentifier": long_id}, {"x": 1})
    _, fo = FO["Warehouses"].check_write({"WarehouseId": long_id}, {"x": 1})
    assert dv == [] and [v.rule for v in fo] == [Rule.MAX_LENGTH]


def test_required_columns_on_create_and_not_emptied_on_update() -> None:
    _, on_create = DV["msdyn_shipvias"].check_write({"msdyn_description": "d"}, None)
    assert {v.column for v in on_create} == {"msdyn_name", "_msdyn_company_value"}
    _, on_update = DV["msdyn_shipvias"].check_write({"msdyn_name": ""}, {"msdyn_name": "A"})
    assert [v.rule for v in on_update] == [Rule.REQUIRED]


def test_company_cannot_change_after_create() -> None:
    existing = {"_msdyn_company_value": "9a0f3cde-3e2b-4b52-9d5b-4a3b5c6d7e8f"}
    other = "1a0f3cde-3e2b-4b52-9d5b-4a3b5c6d7e8f"
    _, same = DV["msdyn_shipvias"].check_write(
        {"_msdyn_company_value": existing["_msdyn_company_value"]}, existing
    )
    _, moved = DV["msdyn_shipvias"].check_write({"_msdyn_company_value": other}, existing)
    assert same == [] and [v.rule for v in moved] == [Rule.IMMUTABLE]


def test_values_are_normalised() -> None:
    norm, _ = FO["AssetMaintenanceAssets"].check_write({"AcquisitionDate": "2024-03-01"}, {"x": 1})
    assert norm["AcquisitionDate"] == "2024-03-01T00:00:00Z"
    norm, _ = FO["Warehouses"].check_write({"WarehouseType": "quarantine"}, {"x": 1})
    assert norm["WarehouseType"] == "Quarantine"
    norm, _ = DV["msdyn_customerassets"].check_write(
        {"msdyn_acquisitiondate": "2024-03-01T00:00:00Z"}, {"x": 1}
    )
    assert norm["msdyn_acquisitiondate"] == "2024-03-01"


def test_fno_references_resolve_in_the_rows_own_company(fno_store: Store) -> None:
    _put(fno_store, "LegalEntities", {"LegalEntityId": "usmf"})
    _put(fno_store, "LegalEntities", {"LegalEntityId": "usrt"})
    _put(fno_store, "OperationalSites", {"dataAreaId": "usmf", "SiteId": "1"})
    rules, resolver = FO["Warehouses"], _Resolver(fno_store)
    ok = {"dataAreaId": "usmf", "WarehouseId": "W", "OperationalSiteId": "1"}
    elsewhere = {**ok, "dataAreaId": "usrt"}
    unknown_company = {**ok, "dataAreaId": "xxxx"}
    assert rules.check_references(ok, ok, resolver) == []
    assert [v.column for v in rules.check_references(elsewhere, elsewhere, resolver)] == ["OperationalSiteId"]
    assert {v.column for v in rules.check_references(unknown_company, unknown_company, resolver)} == {
        "dataAreaId",
        "OperationalSiteId",
    }


def test_a_row_may_reference_itself(fno_store: Store) -> None:
    _put(fno_store, "LegalEntities", {"LegalEntityId": "usmf"})
    _put(fno_store, "OperationalSites", {"dataAreaId": "usmf", "SiteId": "1"})
    row = {
        "dataAreaId": "usmf",
        "WarehouseId": "W",
        "OperationalSiteId": "1",
        "MainRefillingWarehouseId": "W",
    }
    assert FO["Warehouses"].check_references(row, row, _Resolver(fno_store)) == []


def test_natural_key_unique_per_company(fno_store: Store) -> None:
    _put(fno_store, "LegalEntities", {"LegalEntityId": "usmf"})
    _put(fno_store, "DeliveryModesV2", {"dataAreaId": "usmf", "ModeCode": "AIR"})
    rules, resolver = FO["DeliveryModesV2"], _Resolver(fno_store)
    assert [v.rule for v in rules.check_unique({"dataAreaId": "usmf", "ModeCode": "air"}, resolver)] == [
        Rule.DUPLICATE
    ]
    assert rules.check_unique({"dataAreaId": "usrt", "ModeCode": "AIR"}, resolver) == []
