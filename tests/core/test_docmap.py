"""Document maps (``kind: document``): the format's checks, with errors naming file and field, and
``dualwrite mappings check`` over them (docs/mappings.md, "Document maps")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.core.docmap import DocumentMap
from bridge.core.errors import ConfigError
from bridge.core.mapping import load_mapping_file, load_mappings
from bridge.mapcheck import check

ROOT = Path(__file__).resolve().parents[2]


def base() -> dict[str, Any]:
    return {
        "name": "wo",
        "kind": "document",
        "direction": "to_scm",
        "company": "USMF",
        "settings": {"origin": "WorkOrder"},
        "cds": {
            "entity_set": "msdyn_workorders",
            "logical_name": "msdyn_workorder",
            "primary_id": "msdyn_workorderid",
            "key_field": "msdyn_name",
        },
        "scm": {"entity_set": "Orders", "entity_name": "Order", "key_field": "OrderNumber"},
        "filters": [{"column": "msdyn_systemstatus", "none_of": [690970000]}],
        "values": [{"target": "Origin", "setting": "origin"}],
        "lines": [
            {
                "name": "products",
                "cds": {
                    "entity_set": "msdyn_workorderproducts",
                    "logical_name": "msdyn_workorderproduct",
                    "primary_id": "msdyn_workorderproductid",
                    "parent": "msdyn_workorder",
                },
                "scm": {"entity_set": "Lines", "entity_name": "Line", "parent_field": "OrderNumber"},
                "key": {"target": "LineNo", "from": "msdyn_lineorder"},
                "values": [{"target": "Qty", "from": "msdyn_quantity"}],
            }
        ],
    }


def write(tmp_path: Path, data: dict[str, Any], name: str = "wo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def error_of(tmp_path: Path, data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_mapping_file(write(tmp_path, data))
    return str(caught.value)


def test_a_document_loads_with_its_lines(tmp_path: Path) -> None:
    dmap = load_mapping_file(write(tmp_path, base()))
    assert isinstance(dmap, DocumentMap)
    assert dmap.cds_tables() == ["msdyn_workorder", "msdyn_workorderproduct"]
    assert dmap.lines[0].key.source == "msdyn_lineorder"


def test_a_line_table_routes_to_its_document(tmp_path: Path) -> None:
    write(tmp_path, base())
    maps = load_mappings(tmp_path)
    assert maps.by_cds_logical_name("msdyn_workorderproduct") is maps.get("wo")


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        (
            lambda d: d["values"].append({"target": "X", "setting": "nope"}),
            "values[1].setting",
            "unknown setting",
        ),
        (lambda d: d["values"].append({"target": "X"}), "values[1]", "exactly one of from"),
        (
            lambda d: d["values"].append({"target": "X", "from": "a", "constant": 1}),
            "values[1]",
            "exactly one of from",
        ),
        (lambda d: d["values"].append({"target": "Origin", "constant": 1}), "values[1].target", "two values"),
        (
            lambda d: d["values"].append({"target": "OrderNumber", "constant": 1}),
            "values[1].target",
            "the key",
        ),
        (
            lambda d: d["values"].append({"target": "X", "from": "a", "map": "foo"}),
            "values[1].map",
            "unknown value map",
        ),
        (lambda d: d["filters"].append({"column": "a"}), "filters[1]", "exactly one of equals"),
        (
            lambda d: d["values"].append(
                {"target": "X", "rule": {"inputs": ["a", "b"], "rows": [{"when": [1], "take": "c"}]}}
            ),
            "values[1].rule.rows[0].when",
            "1 values for 2 inputs",
        ),
        (
            lambda d: d["values"].append({"target": "X", "rule": {"inputs": ["a"], "rows": [{"when": [1]}]}}),
            "values[1].rule.rows[0]",
            "exactly one of take",
        ),
        (lambda d: d["lines"][0]["values"].append({"target": "LineNo", "from": "x"}), "lines[0]", "line key"),
        (lambda d: d["lines"][0].pop("key"), "lines[0].key", "Field required"),
        (lambda d: d.update(direction="both"), "direction", "Input should be"),
        (lambda d: d.update(fields=[{"cds": "a", "scm": "b"}]), "fields", "at most 0"),
        (
            lambda d: d["lines"][0].update(name="x") or d["lines"].append(d["lines"][0]),
            "lines[1].name",
            "two collections",
        ),
        (lambda d: d["values"].append({"target": "X", "from": "a", "divide": 0}), "values[1]", "divide by 0"),
    ],
)
def test_a_broken_document_names_the_field(tmp_path: Path, change: Any, where: str, says: str) -> None:
    data = base()
    change(data)
    message = error_of(tmp_path, data)
    assert message.startswith(f"{tmp_path / 'wo.yaml'}:{where}"), message
    assert says in message


def test_lines_from_fno_are_refused(tmp_path: Path) -> None:
    data = base()
    data["direction"] = "to_cds"
    data["values"] = [{"target": "name", "constant": "x"}]
    data["lines"][0]["values"] = [{"target": "Qty2", "from": "x"}]
    assert "lines are supported for documents from Dataverse to F&O" in error_of(tmp_path, data)


def test_a_lookup_to_dataverse_needs_its_id_column(tmp_path: Path) -> None:
    data = base()
    data["direction"] = "to_cds"
    data["lines"] = []
    data["values"] = [
        {"target": "defaultuomid", "from": "Unit", "lookup": {"entity_set": "uoms", "key_field": "name"}}
    ]
    assert "values[0].lookup: a lookup written to Dataverse needs id_field" in error_of(tmp_path, data)


def test_a_line_table_used_by_two_maps_is_refused(tmp_path: Path) -> None:
    write(tmp_path, base(), "a.yaml")
    other = base()
    other["name"] = "other"
    other["cds"] = {**other["cds"], "entity_set": "x_heads", "logical_name": "x_head"}
    other["scm"] = {"entity_set": "Heads", "entity_name": "Head", "key_field": "K"}
    write(tmp_path, other, "b.yaml")
    with pytest.raises(
        ConfigError, match=r"b\.yaml:cds\.logical_name: 'msdyn_workorderproduct' is also used by"
    ):
        load_mappings(tmp_path)


def test_mappings_check_lists_documents_and_every_broken_file(tmp_path: Path) -> None:
    write(tmp_path, base(), "good.yaml")
    broken = base()
    broken["name"] = "bad"
    broken["values"] = [{"target": "X", "setting": "missing"}]
    write(tmp_path, broken, "bad.yaml")
    ok, report = check(tmp_path)
    assert not ok
    assert f"error {tmp_path / 'bad.yaml'}:values[0].setting: unknown setting 'missing'" in report
    assert "ok    wo: document msdyn_workorders -> Orders in USMF, 1 values, 1 filters; products:" in report


def test_the_shipped_document_maps_check() -> None:
    ok, report = check(ROOT / "mappings")
    assert ok, report
    for name in ("product", "work_order", "agreement_invoice"):
        assert f"ok    {name}: document " in report
