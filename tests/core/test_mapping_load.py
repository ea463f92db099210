"""Loading mapping files: valid files load, every problem names the file and the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.core.errors import ConfigError
from bridge.core.events import System
from bridge.core.mapping import ConflictPolicy, Direction, load_mapping_file, load_mappings
from bridge.mapcheck import check

BASE: dict[str, Any] = {
    "name": "ship_via",
    "cds": {
        "entity_set": "msdyn_shipvias",
        "logical_name": "msdyn_shipvia",
        "primary_id": "msdyn_shipviaid",
        "key_field": "msdyn_name",
    },
    "scm": {"entity_set": "DeliveryModesV2", "entity_name": "DeliveryModeV2", "key_field": "ModeCode"},
    "value_maps": {"kind_map": {"kind": "enum", "values": {"Road": 1, "Air": 2}}},
    "fields": [
        {"scm": "ModeDescription", "cds": "msdyn_description"},
        {"scm": "ModeKind", "cds": "msdyn_kind", "map": "kind_map", "default": {"scm": "Road"}},
    ],
}


def write(directory: Path, data: Any, name: str = "ship_via.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def variant(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data


def field_variant(index: int, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["fields"][index].update(changes)
    return data


def error_of(tmp_path: Path, data: Any) -> ConfigError:
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_mapping_file(path)
    assert info.value.file == str(path)
    return info.value


def test_valid_file_loads_with_defaults(tmp_path: Path) -> None:
    mset = load_mappings(write(tmp_path, BASE).parent)
    emap = mset.maps["ship_via"]
    assert emap.conflict_policy is ConflictPolicy.NEWER_WINS
    assert emap.fields[0].direction is Direction.BOTH
    assert emap.cds.company_field == "msdyn_company" and emap.scm.company_field == "dataAreaId"
    assert mset.by_cds_logical_name("msdyn_shipvia") is emap
    assert mset.by_cds_entity_set("msdyn_shipvias") is emap
    assert mset.by_scm_entity_set("DeliveryModesV2") is emap
    assert mset.by_scm_event_name("MSERP_DeliveryModeV2") is emap
    assert mset.by_scm_event_name("mserp_warehouse") is None


def test_unknown_value_map_names_file_and_field(tmp_path: Path) -> None:
    err = error_of(tmp_path, field_variant(1, map="foo"))
    assert err.field == "fields[1].map"
    assert "unknown value map 'foo'" in str(err) and "ship_via.yaml" in str(err)


@pytest.mark.parametrize(
    ("data", "field", "text"),
    [
        (
            variant(cds={k: v for k, v in BASE["cds"].items() if k != "key_field"}),
            "cds.key_field",
            "required",
        ),
        (field_variant(0, drection="both"), "fields[0].drection", "Extra inputs"),
        (field_variant(0, direction="sideways"), "fields[0].direction", "both"),
        (variant(conflict_policy="random"), "conflict_policy", "newer-wins"),
        (variant(fields=[]), "fields", "at least 1"),
        (field_variant(0, cds="msdyn description"), "fields[0].cds", "pattern"),
        (variant(value_maps={"k": {"kind": "enum", "values": {}}}), "value_maps.k.values", "at least 1"),
        (field_variant(1, default={"fno": "Road"}), "fields[1].default.fno (key)", "'cds' or 'scm'"),
    ],
)
def test_schema_errors_name_the_field(tmp_path: Path, data: Any, field: str, text: str) -> None:
    err = error_of(tmp_path, data)
    assert err.field == field
    assert text in str(err)


def test_several_schema_errors_are_all_reported(tmp_path: Path) -> None:
    err = error_of(tmp_path, variant(name=None, conflict_policy="x"))
    assert "conflict_policy" in str(err) and err.field == "name"


@pytest.mark.parametrize(
    ("data", "field", "text"),
    [
        (
            field_variant(0, lookup={"cds_entity_set": "a", "cds_key_field": "b"}, map="noyes"),
            "fields[0].map",
            "no value map",
        ),
        (field_variant(0, cds="msdyn_name"), "fields[0].cds", "key or company"),
        (field_variant(0, scm="dataAreaId"), "fields[0].scm", "key or company"),
        (field_variant(1, cds="msdyn_description", map=None, default={}), "fields[1].cds", "two fields"),
        (field_variant(1, direction="to_cds"), "fields[1].default.scm", "never written to scm"),
        (field_variant(1, default={"scm": "Sea"}), "fields[1].default.scm", "no counterpart"),
        (field_variant(1, default={"cds": "Road"}), "fields[1].default.cds", "option-set"),
        (
            field_variant(0, lookup={"cds_entity_set": "a", "cds_key_field": "b"}, default={"cds": "x"}),
            "fields[0].default.cds",
            "lookup cannot have a default",
        ),
        (variant(value_maps={"noyes": {"values": {"A": 1}}}), "value_maps.noyes", "built-in"),
        (variant(value_maps={"k": {"values": {"A": 1, "B": 1}}}), "value_maps.k.values", "share"),
    ],
)
def test_semantic_errors_name_the_field(tmp_path: Path, data: Any, field: str, text: str) -> None:
    err = error_of(tmp_path, data)
    assert err.field == field
    assert text in str(err)


def test_one_way_source_may_feed_a_second_field(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["fields"].append({"scm": "ModeDescription", "cds": "msdyn_longdescription", "direction": "to_cds"})
    emap = load_mapping_file(write(tmp_path, data))
    assert "ModeDescription" in emap.source_columns(System.SCM)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    err = error_of(tmp_path, "name: x\nfields: [unclosed\n")
    assert "invalid YAML at line" in str(err)


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    err = error_of(tmp_path, "name: a\nname: b\n")
    assert "duplicate key 'name'" in str(err)


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    assert "expected a mapping" in str(error_of(tmp_path, text))


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_mapping_file(path)


def test_two_files_cannot_map_the_same_table(tmp_path: Path) -> None:
    write(tmp_path, BASE, "a.yaml")
    write(tmp_path, variant(name="other"), "b.yaml")
    with pytest.raises(ConfigError) as info:
        load_mappings(tmp_path)
    assert info.value.file == str(tmp_path / "b.yaml") and info.value.field == "cds.entity_set"


def test_empty_or_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no mapping files"):
        load_mappings(tmp_path)
    with pytest.raises(ConfigError, match="not a directory"):
        load_mappings(tmp_path / "nope")


def test_files_other_than_yaml_are_ignored(tmp_path: Path) -> None:
    write(tmp_path, BASE)
    (tmp_path / "README.md").write_text("# not a map\n")
    assert list(load_mappings(tmp_path).maps) == ["ship_via"]


# ---------------------------------------------------------------- dualwrite mappings check
def test_check_reports_valid_maps(tmp_path: Path) -> None:
    ok, report = check(write(tmp_path, BASE).parent)
    assert ok
    assert "ok    ship_via: DeliveryModesV2 <-> msdyn_shipvias, 2 fields" in report
    assert report.endswith("1 of 1 mapping files loaded from " + str(tmp_path) + ": valid")


def test_check_lists_every_broken_file(tmp_path: Path) -> None:
    write(tmp_path, BASE, "a.yaml")
    write(tmp_path, field_variant(1, map="foo"), "b.yaml")
    write(tmp_path, "name: [\n", "c.yaml")
    ok, report = check(tmp_path)
    assert not ok
    assert "b.yaml:fields[1].map: unknown value map 'foo'" in report
    assert "c.yaml: invalid YAML" in report
    assert "1 of 3 mapping files loaded" in report and report.endswith("INVALID")


def test_check_reports_clashes_between_files(tmp_path: Path) -> None:
    write(tmp_path, BASE, "a.yaml")
    write(tmp_path, variant(cds={**BASE["cds"], "entity_set": "x", "logical_name": "y"}), "b.yaml")
    ok, report = check(tmp_path)
    assert not ok and "b.yaml:name: 'ship_via' is also used by" in report


def test_check_of_missing_directory_fails_cleanly(tmp_path: Path) -> None:
    ok, report = check(tmp_path / "nope")
    assert not ok and "not a directory" in report
    ok, report = check(tmp_path)
    assert not ok and "no mapping files" in report


def test_one_way_fields_flow_only_their_way(tmp_path: Path) -> None:
    """The published maps' ``>``/``>>`` (F&O -> Dataverse) and ``<``/``<<`` (Dataverse -> F&O)."""
    data = copy.deepcopy(BASE)
    data["fields"] = [
        {"scm": "ModeDescription", "cds": "msdyn_description"},
        {"scm": "ModeNote", "cds": "msdyn_note", "direction": "to_scm"},
        {"scm": "ModeLabel", "cds": "msdyn_label", "direction": "to_cds"},
    ]
    emap = load_mapping_file(write(tmp_path, data))
    cds_row = {"msdyn_description": "Air", "msdyn_note": "n", "msdyn_label": "l"}
    scm_row = {"ModeDescription": "Air", "ModeNote": "N", "ModeLabel": "L"}
    assert emap.to_target(System.CDS, cds_row, {}) == {"ModeDescription": "Air", "ModeNote": "n"}
    assert emap.to_target(System.SCM, scm_row, {}) == {"msdyn_description": "Air", "msdyn_label": "L"}
    # A change to a column that flows only the other way does not trigger a write.
    assert not emap.touches_mapped(System.SCM, {"ModeNote": "changed"})
    assert not emap.touches_mapped(System.CDS, {"msdyn_label": "changed"})
    assert emap.touches_mapped(System.CDS, {"msdyn_note": "changed"})
