"""The shipped mapping files and the docs example: they load, and every table, column, kind,
reference and option they name exists in the emulators' schema (bridge/sandbox/schema/)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.core.entitymap import CdsSide, EntityMap, EnumTable, FieldMap, Lookup, ScmSide
from bridge.core.events import System
from bridge.core.mapping import load_mapping_file, load_mappings
from bridge.mapcheck import check
from bridge.sandbox.schema import DATAVERSE_TABLES, FNO_TABLES, FO_NOYES, Kind, Table, table_by_set
from bridge.sandbox.schema.fs_dataverse import FS_DATAVERSE_TABLES
from bridge.sandbox.schema.fs_fno import FS_FNO_TABLES

ROOT = Path(__file__).resolve().parents[2]
MAPPINGS = ROOT / "mappings"
DOC = ROOT / "docs" / "mappings.md"
NAMES = {"warehouse", "customer_asset", "customer_asset_category", "payment_terms", "ship_via"}
DOCUMENTS = {"product", "work_order", "agreement_invoice"}  # document maps (tests/core/test_docmap.py)
TEXT = {Kind.STRING, Kind.MEMO}
NUMBER = {Kind.INT, Kind.DECIMAL}


def _field_problems(emap: EntityMap, i: int, f: FieldMap, dv: Table, fo: Table) -> list[str]:
    where = f"{emap.name}: fields[{i}]"
    dvc, foc = dv.column(f.cds), fo.column(f.scm)
    if dvc is None or foc is None:
        return [f"{where}: no column {f.cds if dvc is None else f.scm}"]
    problems = []
    for side, col in ((System.CDS, dvc), (System.SCM, foc)):
        if f.direction.flows_from(side.other) and col.read_only:
            problems.append(f"{where}: {col.name} is read-only")
    kinds = (dvc.kind, foc.kind)
    if f.lookup is not None:
        lk = f.lookup
        target = table_by_set(DATAVERSE_TABLES, lk.cds_entity_set)
        ok = (
            dvc.kind is Kind.LOOKUP
            and dvc.target == lk.cds_entity_set
            and dvc.nav == (lk.cds_nav or f.cds)
            and foc.kind is Kind.STRING
            and foc.target == lk.scm_entity_set
            and foc.target_key == lk.scm_key_field
            and target is not None
            and target.column(lk.cds_key_field) is not None
            and target.company_column == emap.cds.company_field  # resolved in the same company
        )
    elif f.map in emap.value_maps:
        values = emap.value_maps[f.map].values
        ok = (
            kinds == (Kind.OPTIONSET, Kind.ENUM)
            and set(dvc.options) == set(values.values())
            and set(foc.options) == set(values)
        )
    else:
        ok = {
            None: dvc.kind in TEXT and foc.kind in TEXT,
            "copy": dvc.kind in TEXT and foc.kind in TEXT,
            "number": dvc.kind in NUMBER and foc.kind in NUMBER,
            "optional_number": dvc.kind in NUMBER and foc.kind in NUMBER,
            "number_text": dvc.kind in NUMBER and foc.kind in TEXT,
            "noyes": kinds == (Kind.BOOL, Kind.ENUM) and foc.options == FO_NOYES,
            "date": kinds == (Kind.DATE, Kind.DATE),
        }.get(f.map, False)
    if not ok:
        problems.append(f"{where}: {f.cds} ({dvc.kind}) / {f.scm} ({foc.kind}) do not fit map {f.map}")
    return problems


def schema_problems(emap: EntityMap) -> list[str]:
    """Everything in ``emap`` that the emulated schema contradicts (empty when it all fits)."""
    dv = table_by_set(DATAVERSE_TABLES, emap.cds.entity_set)
    fo = table_by_set(FNO_TABLES, emap.scm.entity_set)
    if dv is None or fo is None:
        return [f"{emap.name}: unknown table"]
    companies = table_by_set(DATAVERSE_TABLES, emap.cds.company_entity_set)
    problems = [
        f"{emap.name}: {what}"
        for what, ok in (
            ("cds.logical_name", dv.logical_name == emap.cds.logical_name),
            ("cds.primary_id", dv.primary_id == emap.cds.primary_id),
            ("cds key", dv.key == (emap.cds.company_field, emap.cds.key_field)),
            ("cds.company_field", dv.company_column == emap.cds.company_field),
            (
                "cds.company_key_field",
                companies is not None and companies.key == (emap.cds.company_key_field,),
            ),
            ("scm.entity_name", fo.logical_name == emap.scm.entity_name),
            ("scm key", fo.key == (emap.scm.company_field, emap.scm.key_field)),
            ("notifies", dv.notifies and fo.notifies),
        )
        if not ok
    ]
    for i, f in enumerate(emap.fields):
        problems += _field_problems(emap, i, f, dv, fo)
    return problems


def test_the_shipped_maps_load() -> None:
    assert set(load_mappings(MAPPINGS).maps) == NAMES | DOCUMENTS
    for name in NAMES | DOCUMENTS:  # file names follow map names
        assert load_mapping_file(MAPPINGS / f"{name}.yaml").name == name


@pytest.mark.parametrize("name", sorted(NAMES))
def test_shipped_map_fits_the_schema(name: str) -> None:
    emap = load_mappings(MAPPINGS).maps[name]
    assert schema_problems(emap) == []


# The Field Service tables (schema/fs_*.py) notify too; their document maps are not table maps.
_FIELD_SERVICE = {t.entity_set for t in (*FS_DATAVERSE_TABLES, *FS_FNO_TABLES)}


def test_every_notifying_table_has_exactly_one_map() -> None:
    maps = [m for m in load_mappings(MAPPINGS) if m.cds.entity_set not in _FIELD_SERVICE]
    dv = sorted(t.entity_set for t in DATAVERSE_TABLES if t.notifies and t.entity_set not in _FIELD_SERVICE)
    fo = sorted(t.entity_set for t in FNO_TABLES if t.notifies and t.entity_set not in _FIELD_SERVICE)
    assert dv == sorted(m.cds.entity_set for m in maps)
    assert fo == sorted(m.scm.entity_set for m in maps)


def test_schema_check_catches_a_wrong_column() -> None:
    emap = load_mappings(MAPPINGS).maps["ship_via"]
    broken = emap.model_copy(update={"fields": [FieldMap(cds="msdyn_description", scm="ModeCodeX")]})
    assert schema_problems(broken) != []


def test_mappings_check_passes_on_the_shipped_files() -> None:
    ok, report = check(MAPPINGS)
    assert ok, report
    assert report.count("\nok    ") + report.startswith("ok    ") == len(NAMES | DOCUMENTS)


# ---------------------------------------------------------------- docs/mappings.md
def doc_example() -> str:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## A complete example", 1)[1]
    match = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_docs_example_loads_and_fits_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "example.yaml"
    path.write_text(doc_example(), encoding="utf-8")
    emap = load_mapping_file(path)
    assert schema_problems(emap) == []
    # the example shows every feature it documents
    assert emap.value_maps and any(f.lookup for f in emap.fields) and any(f.default for f in emap.fields)
    assert {f.direction.value for f in emap.fields} >= {"both", "to_cds"}


def _spelled_out(f: FieldMap) -> dict[str, object]:
    """A field with its defaults written out (``map: copy``, ``cds_nav`` = the column)."""
    out = f.model_dump()
    out["map"] = out["map"] or ("copy" if f.lookup is None else None)
    if f.lookup is not None:
        out["lookup"]["cds_nav"] = f.lookup.cds_nav or f.cds
    return out


def test_docs_example_is_an_excerpt_of_the_shipped_warehouse_map(tmp_path: Path) -> None:
    path = tmp_path / "example.yaml"
    path.write_text(doc_example(), encoding="utf-8")
    example = load_mapping_file(path)
    shipped = load_mapping_file(MAPPINGS / "warehouse.yaml")
    assert (example.name, example.cds, example.scm) == (shipped.name, shipped.cds, shipped.scm)
    assert example.value_maps == shipped.value_maps
    by_pair = {(f.scm, f.cds): f for f in shipped.fields}
    for f in example.fields:
        assert by_pair.get((f.scm, f.cds)) is not None, (f.scm, f.cds)
        assert _spelled_out(f) == _spelled_out(by_pair[(f.scm, f.cds)]), (f.scm, f.cds)


@pytest.mark.parametrize("model", [EntityMap, CdsSide, ScmSide, FieldMap, Lookup, EnumTable])
def test_docs_describe_every_key(model: type[EntityMap]) -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [name for name in model.model_fields if f"`{name}`" not in text]
    assert missing == []
