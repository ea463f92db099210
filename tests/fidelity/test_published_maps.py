"""The shipped maps against Microsoft's published out-of-box maps, row by row.

Each published table is a verbatim copy in tests/fidelity/published/ (source repo, path and commit
at its top). A row is (F&O field in upper case, direction, Dataverse column or
``lookup.key_column``); the published map types read as: ``=`` and ``><`` both ways (``><`` through
a value map), ``>``/``>>`` F&O -> Dataverse only, ``<``/``<<`` Dataverse -> F&O only. The map's
natural key pair is a row too. Any difference not listed in tests/fidelity/deliberate.py fails.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.core.entitymap import Direction, EntityMap
from bridge.core.mapping import DocumentMap, MappingSet, load_mappings
from tests.fidelity.deliberate import ADDED, LEFT_OUT, PUBLISHED, UNPUBLISHED
from tests.fidelity.odata_names import VERIFIED

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED_DIR = Path(__file__).parent / "published"
ARROWS = {
    "=": Direction.BOTH,
    "><": Direction.BOTH,
    ">": Direction.TO_CDS,
    ">>": Direction.TO_CDS,
    "<": Direction.TO_SCM,
    "<<": Direction.TO_SCM,
}
SOURCE = re.compile(r"^Source (repo|path|commit):\s+(\S+)$", re.MULTILINE)

Row = tuple[str, Direction, str]


def published_rows(text: str) -> set[Row]:
    """The table rows of a published include: ``FIELD | map type | column | default``."""
    rows: set[Row] = set()
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) < 3 or cells[1] not in ARROWS:
            continue
        rows.add((cells[0], ARROWS[cells[1]], cells[2]))
    return rows


def shipped_rows(emap: EntityMap) -> set[Row]:
    rows: set[Row] = {(emap.scm.key_field.upper(), Direction.BOTH, emap.cds.key_field)}
    for f in emap.fields:
        column = f"{f.cds}.{f.lookup.cds_key_field}" if f.lookup is not None else f.cds
        rows.add((f.scm.upper(), f.direction, column))
    return rows


@pytest.fixture(scope="module")
def maps() -> MappingSet:
    return load_mappings(ROOT / "mappings")


def test_every_shipped_map_is_compared_or_said_unpublished(maps: MappingSet) -> None:
    # Document maps (product, work_order, agreement_invoice) follow the Field Service templates, not
    # a dual-write map: docs/field-service.md compares them.
    assert {m.name for m in maps if not isinstance(m, DocumentMap)} == set(PUBLISHED) | set(UNPUBLISHED)
    assert not set(PUBLISHED) & set(UNPUBLISHED)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_copy_names_its_source(name: str) -> None:
    text = (PUBLISHED_DIR / PUBLISHED[name]).read_text(encoding="utf-8")
    source = dict(SOURCE.findall(text))
    assert source["repo"] == "MicrosoftDocs/dynamics-365-unified-operations-public"
    assert source["path"].endswith("/" + PUBLISHED[name])
    assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
    assert published_rows(text), "the copy holds the published table"


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_shipped_map_is_the_published_map(maps: MappingSet, name: str) -> None:
    emap = maps.get(name)
    assert emap is not None
    published = published_rows((PUBLISHED_DIR / PUBLISHED[name]).read_text(encoding="utf-8"))
    shipped = shipped_rows(emap)
    missing = {r for r in published - shipped if (name, r[0]) not in LEFT_OUT}
    extra = {r for r in shipped - published if (name, r[0]) not in ADDED}
    assert not missing, f"{name}: published rows the shipped map lacks (or has differently): {missing}"
    assert not extra, f"{name}: shipped rows the published map lacks (or has differently): {extra}"


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_every_deliberate_difference_is_still_a_difference(maps: MappingSet, name: str) -> None:
    emap = maps.get(name)
    assert emap is not None
    published = {r[0] for r in published_rows((PUBLISHED_DIR / PUBLISHED[name]).read_text("utf-8"))}
    shipped = {r[0] for r in shipped_rows(emap)}
    for (map_name, field), reason in LEFT_OUT.items():
        if map_name == name:
            assert reason and field in published and field not in shipped, (map_name, field)
    for (map_name, field), reason in ADDED.items():
        if map_name == name:
            assert reason and field in shipped and field not in published, (map_name, field)


def published_arrows(text: str) -> dict[tuple[str, str], str]:
    """(F&O field, Dataverse column) -> the published map type as written (``=``, ``><``, ...)."""
    out: dict[tuple[str, str], str] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) >= 3 and cells[1] in ARROWS:
            out[(cells[0], cells[2])] = cells[1]
    return out


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_enum_and_noyes_fields_are_value_mapped_in_the_published_map(maps: MappingSet, name: str) -> None:
    """``><`` is "both ways through a value map": every field we convert between an F&O enum and a
    Dataverse choice or two-option column is a ``><`` row of the published map."""
    emap = maps.get(name)
    assert emap is not None
    arrows = published_arrows((PUBLISHED_DIR / PUBLISHED[name]).read_text(encoding="utf-8"))
    for f in emap.fields:
        if f.map == "noyes" or f.map in emap.value_maps:
            assert arrows.get((f.scm.upper(), f.cds)) == "><", (name, f.scm, f.cds)


def test_row_reading_follows_the_published_map_types() -> None:
    text = "A | = | a | \nB | >< | b.k | \nC | >> | c | \nD | << | none | \nnot | a | row\n"
    assert published_rows(text) == {
        ("A", Direction.BOTH, "a"),
        ("B", Direction.BOTH, "b.k"),
        ("C", Direction.TO_CDS, "c"),
        ("D", Direction.TO_SCM, "none"),
    }


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_fno_property_names_have_the_metadata_case(maps: MappingSet, name: str) -> None:
    """Upper case hides a wrong case (``CutOffDayOfMonth`` for ``CutoffDayOfMonth``); OData names are
    case-sensitive, so every F&O property a shipped map names must be spelled as the metadata has it."""
    emap = maps.get(name)
    assert emap is not None
    known = VERIFIED[emap.scm.entity_set]
    named = {emap.scm.key_field, emap.scm.company_field, *(f.scm for f in emap.fields)}
    assert named - known == set()
