"""Key segments, $filter transpiling, query options, skiptokens and Prefer parsing."""

from __future__ import annotations

import sqlite3

import pytest

from bridge.sandbox.odata.keys import Key, KeySyntaxError, format_key, parse_key, parse_path
from bridge.sandbox.odata.query import (
    QueryError,
    compile_filter,
    decode_skiptoken,
    encode_skiptoken,
    page_size,
    parse_options,
    parse_prefer,
)
from bridge.sandbox.schema import Kind

COLS = {"name": Kind.STRING, "days": Kind.INT, "on": Kind.DATETIME, "kind": Kind.ENUM, "flag": Kind.BOOL}
GUID = "9a0f3cde-3e2b-4b52-9d5b-4a3b5c6d7e8f"


def test_single_guid_key() -> None:
    path = parse_path(f"msdyn_warehouses({GUID.upper()})")
    assert path.entity_set == "msdyn_warehouses" and path.key == Key(single=GUID)


def test_composite_key_with_doubled_quotes_and_url_encoding() -> None:
    path = parse_path("Warehouses(dataAreaId='usmf',WarehouseId='O''Hare%2F1')")
    assert path.key is not None and path.key.as_dict() == {"dataAreaId": "usmf", "WarehouseId": "O'Hare/1"}


def test_named_guid_and_number_values() -> None:
    assert parse_key(f"msdyn_company={GUID},n=5").as_dict() == {"msdyn_company": GUID, "n": 5}


def test_format_key_round_trips() -> None:
    values = {"dataAreaId": "usmf", "Name": "it's"}
    assert parse_key(format_key(values)).as_dict() == values


@pytest.mark.parametrize(
    "raw",
    [
        "Warehouses(dataAreaId='usmf'",
        "Warehouses(dataAreaId='usmf)",
        "Warehouses(a=1,a=2)",
        "Warehouses(a=)",
        "Warehouses(1,2)",
        "Warehouses(a=1 b=2)",
        "Ware-houses",
        "Warehouses(bogus)",
    ],
)
def test_bad_key_syntax_is_rejected(raw: str) -> None:
    with pytest.raises(KeySyntaxError):
        parse_path(raw)


def _run(where: str) -> list[str]:
    con = sqlite3.connect(":memory:")
    con.execute(
        'CREATE TABLE t ("name" TEXT COLLATE NOCASE, "days" INTEGER, "on" TEXT, "kind" TEXT, "flag" INTEGER)'
    )
    con.executemany(
        "INSERT INTO t VALUES (?,?,?,?,?)",
        [
            ("Net30", 30, "2024-01-01T10:00:00Z", "Net", 1),
            ("COD", 0, "2024-06-01T00:00:00Z", "COD", 0),
            ("O'Brien", 10, "2023-12-31T23:00:00Z", "Net", 0),
        ],
    )
    return [r[0] for r in con.execute(f"SELECT name FROM t WHERE {where} ORDER BY name")]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("name eq 'net30'", ["Net30"]),
        ("name ne 'COD'", ["Net30", "O'Brien"]),
        ("days gt 5 and days le 30", ["Net30", "O'Brien"]),
        ("days eq 0 or name eq 'O''Brien'", ["COD", "O'Brien"]),
        ("on ge 2024-01-01T00:00:00Z", ["COD", "Net30"]),
        ("on le 2024-01-01T01:00:00+02:00", ["O'Brien"]),
        ("kind eq Microsoft.Dynamics.DataEntities.PaymentMethod'COD'", ["COD"]),
        ("name eq 'Ns.Enum''x'", []),
        ("flag eq true", ["Net30"]),
        ("startswith(name,'Ne')", ["Net30"]),
        ("name gt 'M'", ["Net30", "O'Brien"]),
    ],
)
def test_filter_transpiles_to_sqlite(expr: str, names: list[str]) -> None:
    assert _run(compile_filter(expr, COLS)) == names


def test_filter_rejects_unknown_property_by_name() -> None:
    with pytest.raises(QueryError) as info:
        compile_filter("nosuch eq 1", COLS)
    assert info.value.prop == "nosuch"


def test_filter_syntax_error_is_a_query_error() -> None:
    with pytest.raises(QueryError):
        compile_filter("name eq", COLS)


def test_filter_reports_the_columns_it_uses() -> None:
    used: set[str] = set()
    compile_filter("days gt 1 and name eq 'x'", COLS, used)
    assert used == {"days", "name"}


def test_options() -> None:
    opts = parse_options(
        {"$select": "name,days", "$orderby": "days desc,name", "$top": "5", "$skip": "2", "$count": "true"},
        COLS,
    )
    assert opts.select == ("name", "days") and opts.order_sql == '"days" DESC, "name" ASC'
    assert (opts.top, opts.skip, opts.count) == (5, 2, True)


@pytest.mark.parametrize(
    "query",
    [
        {"$top": "-1"},
        {"$top": "x"},
        {"$select": "nosuch"},
        {"$orderby": "name sideways"},
        {"$count": "maybe"},
        {"$expand": "x"},
    ],
)
def test_bad_options_are_query_errors(query: dict[str, str]) -> None:
    with pytest.raises(QueryError):
        parse_options(query, COLS)


def test_skip_can_be_refused() -> None:
    with pytest.raises(QueryError):
        parse_options({"$skip": "1"}, COLS, allow_skip=False)


def test_skiptoken_is_bound_to_its_query() -> None:
    token = encode_skiptoken(20, "q1")
    assert decode_skiptoken(token, "q1") == 20
    for bad in (token, "garbage!"):
        with pytest.raises(QueryError):
            decode_skiptoken(bad, "q2")


def test_prefer_and_page_size() -> None:
    prefer = parse_prefer('return=representation, odata.maxpagesize=50, odata.include-annotations="*"')
    assert prefer["return"] == "representation" and prefer["odata.include-annotations"] == "*"
    assert page_size(prefer, 5000, 5000) == (50, True)
    assert page_size(parse_prefer("odata.maxpagesize=20000"), 10_000, 10_000) == (10_000, True)
    assert page_size({}, 5000, 5000) == (5000, False)
