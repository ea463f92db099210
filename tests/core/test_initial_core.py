"""The initial sync's comparison core: map order, pairing of streamed pages, per-record plans."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.core.compare import FieldSelection, WriteKind, lookups_needed, plan_record
from bridge.core.errors import ConfigError, RejectedError
from bridge.core.events import System
from bridge.core.maporder import dependency_order, order_for, self_reference_columns
from bridge.core.mapping import EntityMap, MappingSet, load_mappings
from bridge.core.pairing import Pairer, RecordPair, SideRecord

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
CDS, SCM = System.CDS, System.SCM
SITE = "5f0c2a3e-8a51-4d7e-9c3b-0d3c2b1a9e77"
OTHER_WH = "0b7a1c3e-1111-4d7e-9c3b-0d3c2b1a9e77"


@pytest.fixture(scope="module")
def maps() -> MappingSet:
    return load_mappings(MAPPINGS)


def _map(maps: MappingSet, name: str) -> EntityMap:
    found = maps.get(name)
    assert found is not None
    return found


# ---------------------------------------------------------------- order


def test_categories_come_before_assets_and_self_references_take_two_passes(maps: MappingSet) -> None:
    steps = dependency_order(maps)
    names = [s.name for s in steps]
    assert names.index("customer_asset_category") < names.index("customer_asset")
    by_name = {s.name: s for s in steps}
    assert by_name["customer_asset"].depends_on == ("customer_asset_category",)
    assert by_name["customer_asset"].self_references == ("msdyn_parentasset",)
    assert by_name["customer_asset"].passes == 2
    assert by_name["warehouse"].self_references == (
        "msdyn_mainrefillingwarehouse",
        "msdyn_quarantinewarehouse",
        "msdyn_transitwarehouse",
    )
    assert by_name["warehouse"].external == ("msdyn_operationalsites",)  # sites: no map, must exist
    assert by_name["ship_via"].passes == 1


def test_order_of_some_maps_keeps_the_dependency_order(maps: MappingSet) -> None:
    assert [s.name for s in order_for(maps, ["customer_asset", "customer_asset_category"])] == [
        "customer_asset_category",
        "customer_asset",
    ]


def test_a_cycle_between_maps_is_a_config_error(maps: MappingSet) -> None:
    category = _map(maps, "customer_asset_category")
    data = category.model_dump(mode="json", exclude_none=True)
    data["fields"].append(
        {
            "scm": "AnAssetId",
            "cds": "msdyn_someasset",
            "lookup": {"cds_entity_set": "msdyn_customerassets", "cds_key_field": "msdyn_maintenanceassetid"},
        }
    )
    looped = EntityMap.model_validate(data)
    with pytest.raises(ConfigError, match="cycle"):
        dependency_order([looped, _map(maps, "customer_asset")])
    assert self_reference_columns(looped) == ()


# ---------------------------------------------------------------- pairing


def _rec(company: str, key: str, **image: object) -> SideRecord:
    return SideRecord(company, key, dict(image))


def test_pairs_come_out_as_soon_as_known_and_the_buffer_stays_small() -> None:
    pairer = Pairer()
    assert pairer.add(CDS, [_rec("USMF", k) for k in ("a", "b", "c")]) == []
    out = pairer.add(SCM, [_rec("USMF", k) for k in ("b", "d")])
    # b matched; a is past the F&O reader ("d"): missing there; c too
    got = {(p.key, p.only_on) for p in out}
    assert got == {("b", None), ("a", CDS), ("c", CDS)}
    assert pairer.waiting == 1  # d waits: Dataverse has not read that far
    assert pairer.watermark == "c"
    rest = pairer.end(CDS)
    assert [(p.key, p.only_on) for p in rest] == [("d", SCM)]
    assert pairer.finish() == []


def test_keys_pair_per_company_and_order_by_company_then_key_case_blind() -> None:
    pairer = Pairer()
    pairer.add(CDS, [_rec("DEMF", "A1"), _rec("usmf", "a2")])
    out = pairer.add(SCM, [_rec("USMF", "A2")])
    # F&O passed DEMF: its A1 is missing there; "a2" and "A2" are different keys that sort alike
    assert [(p.company, p.key, p.only_on) for p in out] == [("DEMF", "A1", CDS), ("USMF", "a2", CDS)]
    assert [(p.company, p.key, p.only_on) for p in pairer.finish()] == [("USMF", "A2", SCM)]


def test_once_one_side_ended_the_others_pages_go_out_at_once() -> None:
    pairer = Pairer()
    pairer.add(SCM, [_rec("USMF", "a")])
    pairer.end(SCM)
    assert [(p.key, p.only_on) for p in pairer.add(CDS, [_rec("USMF", "a"), _rec("USMF", "b")])] == [
        ("a", None),
        ("b", CDS),
    ]
    assert [p.key for p in pairer.add(CDS, [_rec("USMF", "c")])] == ["c"]  # not held until the end
    assert pairer.waiting == 0 and pairer.finish() == []


def test_watermark_is_none_until_both_sides_have_read() -> None:
    pairer = Pairer()
    pairer.add(CDS, [_rec("USMF", "a")])
    assert pairer.watermark is None
    pairer.end(SCM)
    assert pairer.watermark == "a"


# ---------------------------------------------------------------- plans


def _ship(company: str, key: str, cds_desc: str | None, scm_desc: str | None) -> RecordPair:
    cds = None if cds_desc is None else SideRecord(company, key, {"msdyn_description": cds_desc})
    scm = None if scm_desc is None else SideRecord(company, key, {"ModeDescription": scm_desc})
    return RecordPair(company, key, cds, scm)


def test_master_wins_a_difference_with_the_differing_field(maps: MappingSet) -> None:
    ship = _map(maps, "ship_via")
    plan = plan_record(ship, _ship("USMF", "AIR", "By air", "Air freight"), CDS)
    assert len(plan.writes) == 1
    write = plan.writes[0]
    assert (write.target, write.kind, write.payload) == (SCM, WriteKind.UPDATE, {"ModeDescription": "By air"})
    assert [(d.column, d.current, d.wanted) for d in write.fields] == [
        ("ModeDescription", "Air freight", "By air")
    ]
    assert plan.projections == {CDS: {"msdyn_description": "By air"}, SCM: {"ModeDescription": "By air"}}
    other = plan_record(ship, _ship("USMF", "AIR", "By air", "Air freight"), SCM)
    assert other.writes[0].target is CDS and other.writes[0].payload == {"msdyn_description": "Air freight"}


def test_equal_records_are_unchanged_and_missing_ones_are_created_either_way(maps: MappingSet) -> None:
    ship = _map(maps, "ship_via")
    assert plan_record(ship, _ship("USMF", "AIR", "x", "x"), CDS).unchanged
    created = plan_record(ship, _ship("USMF", "AIR", None, "Air"), CDS)  # only on F&O: copied to the master
    assert [(w.target, w.kind, w.payload) for w in created.writes] == [
        (CDS, WriteKind.CREATE, {"msdyn_description": "Air"})
    ]


def test_a_warehouse_gets_its_name_back_from_its_key_after_a_create(maps: MappingSet) -> None:
    wh = _map(maps, "warehouse")
    cds = SideRecord("USMF", "W1", {"msdyn_description": "Main", "_msdyn_operationalsite_value": SITE})
    pair = RecordPair("USMF", "W1", cds, None)
    needs = lookups_needed(wh, pair, CDS, FieldSelection.PLAIN)
    assert [(n.source, n.spec.name, n.value) for n in needs] == [(CDS, "msdyn_operationalsite", SITE)]
    plan = plan_record(wh, pair, CDS, {CDS: {"msdyn_operationalsite": "1"}}, FieldSelection.PLAIN)
    to_scm, to_cds = plan.writes
    assert to_scm.kind is WriteKind.CREATE and to_scm.payload["OperationalSiteId"] == "1"
    assert to_scm.payload["WarehouseType"] == "Standard"  # the map's default for an empty type
    assert "MainRefillingWarehouseId" not in to_scm.payload  # a self-reference: second pass
    assert (to_cds.target, to_cds.kind, to_cds.payload) == (CDS, WriteKind.UPDATE, {"msdyn_name": "W1"})
    assert plan.projections[CDS]["msdyn_name"] == "W1"


def test_second_pass_compares_only_self_references(maps: MappingSet) -> None:
    wh = _map(maps, "warehouse")
    cds = SideRecord(
        "USMF", "W1", {"msdyn_description": "Main", "_msdyn_mainrefillingwarehouse_value": OTHER_WH}
    )
    scm = SideRecord("USMF", "W1", {"WarehouseName": "Other", "MainRefillingWarehouseId": ""})
    pair = RecordPair("USMF", "W1", cds, scm)
    needs = lookups_needed(wh, pair, CDS, FieldSelection.SELF_REFERENCES)
    assert [n.spec.name for n in needs] == ["msdyn_mainrefillingwarehouse"]
    plan = plan_record(
        wh, pair, CDS, {CDS: {"msdyn_mainrefillingwarehouse": "W2"}}, FieldSelection.SELF_REFERENCES
    )
    assert [w.payload for w in plan.writes] == [{"MainRefillingWarehouseId": "W2"}]  # the name waits


def test_a_reference_not_found_on_the_target_is_rejected_with_its_table(maps: MappingSet) -> None:
    asset = _map(maps, "customer_asset")
    scm = SideRecord("USMF", "A1", {"Name": "Pump", "MaintenanceAssetTypeId": "PUMPS"})
    pair = RecordPair("USMF", "A1", None, scm)
    with pytest.raises(RejectedError, match="msdyn_customerassetcategories 'PUMPS'") as err:
        plan_record(asset, pair, SCM, {}, FieldSelection.PLAIN)
    assert err.value.code == "lookup-missing"


def test_a_second_pass_plans_references_alone_the_same_as_the_whole_row(maps: MappingSet) -> None:
    wh = _map(maps, "warehouse")
    cds = SideRecord("USMF", "W1", {"_msdyn_mainrefillingwarehouse_value": OTHER_WH.upper()})
    for scm_value, expected in (("", [{"MainRefillingWarehouseId": "W2"}]), ("W2", [])):
        scm = SideRecord("USMF", "W1", {"MainRefillingWarehouseId": scm_value})
        pair = RecordPair("USMF", "W1", cds, scm)
        resolved = {CDS: {"msdyn_mainrefillingwarehouse": "W2"}}
        quick = plan_record(wh, pair, CDS, resolved, FieldSelection.SELF_REFERENCES, with_projections=False)
        full = plan_record(wh, pair, CDS, resolved, FieldSelection.SELF_REFERENCES)
        assert [w.payload for w in quick.writes] == [w.payload for w in full.writes] == expected
        assert quick.projections == {} and full.projections[SCM]["MainRefillingWarehouseId"] == "W2"
    back = RecordPair(
        "USMF",
        "W1",
        SideRecord("USMF", "W1", {}),
        SideRecord("USMF", "W1", {"MainRefillingWarehouseId": "W2"}),
    )
    to_cds = plan_record(
        wh,
        back,
        SCM,
        {SCM: {"msdyn_mainrefillingwarehouse": OTHER_WH}},
        FieldSelection.SELF_REFERENCES,
        with_projections=False,
    )
    assert to_cds.writes[0].payload == {
        "msdyn_mainrefillingwarehouse@odata.bind": f"/msdyn_warehouses({OTHER_WH})"
    }
