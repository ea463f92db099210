"""OData system query options over a store table: ``$filter`` (parsed by ``odata_query``, transpiled to
SQLite), ``$select``, ``$orderby``, ``$top``, ``$skip``, ``$count``, server paging and ``Prefer``.

Identifiers are checked against the table before any SQL is produced, so an unknown property is a
clear 400 and nothing user-written reaches SQL except as quoted literals.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from odata_query import ast, exceptions
from odata_query.grammar import ODataLexer, ODataParser
from odata_query.sql.sqlite import AstToSqliteSqlVisitor

from bridge.sandbox.schema import Kind

# odata_query logs type-inference notes at WARNING; they are not ours to show.
logging.getLogger("odata_query").addHandler(logging.NullHandler())
logging.getLogger("odata_query").propagate = False

_LEXER = ODataLexer()
_PARSER = ODataParser()
_ORDER_ITEM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)(?:\s+(asc|desc))?\s*$", re.I)
_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")
_HAS = re.compile(r"\shas\s", re.I)
_ENUM_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+(?=')")


class QueryError(ValueError):
    """A query option the service cannot accept. ``prop`` names an unknown property, if that is why."""

    def __init__(self, message: str, *, prop: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.prop = prop


@dataclass
class QueryOptions:
    filter_sql: str = ""
    select: tuple[str, ...] | None = None
    order_sql: str = ""
    top: int | None = None
    skip: int = 0
    count: bool = False
    cross_company: bool = False
    filter_text: str = ""
    filtered_columns: set[str] = field(default_factory=set)


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def parse_prefer(header: str | None) -> dict[str, str | None]:
    """``Prefer: return=representation, odata.maxpagesize=10`` → {"return": "representation", ...}.

    A quoted value keeps its commas: ``odata.include-annotations="A,B"`` is one preference (RFC 7240)."""
    out: dict[str, str | None] = {}
    if not header:
        return out
    for item in _split_outside_quotes(header, ","):
        name, sep, value = item.strip().partition("=")
        if name:
            out[name.strip().lower()] = value.strip().strip('"') if sep else None
    return out


def strip_enum_prefixes(text: str) -> str:
    """``Ns.Enum'Yes'`` → ``'Yes'`` outside string literals (F&O enum literals; odata_query lacks them)."""
    out: list[str] = []
    i, in_str = 0, False
    while i < len(text):
        ch = text[i]
        if in_str:
            out.append(ch)
            if ch == "'":
                if text.startswith("''", i):
                    out.append("'")
                    i += 2
                    continue
                in_str = False
            i += 1
            continue
        if ch == "'":
            in_str = True
            out.append(ch)
            i += 1
            continue
        m = _ENUM_PREFIX.match(text, i)
        if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            i = m.end()
            continue
        out.append(ch)
        i += 1
    return "".join(out)


class Dialect(StrEnum):
    """Where the two services' ``$filter`` grammars differ."""

    DATAVERSE = "dataverse"
    # articles/fin-ops-core/dev-itpro/data-entities/odata.md: "The operators 'has' and 'in' are not
    # supported"; "Contains ... has been implemented as a wildcard character: StringField eq '*retail*'".
    FNO = "fno"


class _Visitor(AstToSqliteSqlVisitor):
    """Literals in the store's own forms: datetimes 'YYYY-MM-DDTHH:MM:SSZ', dates 'YYYY-MM-DD'."""

    def __init__(self, columns: Mapping[str, Kind], used: set[str], dialect: Dialect) -> None:
        super().__init__()
        self.columns = columns
        self.used = used
        self.dialect = dialect

    def visit_Compare(self, node: ast.Compare) -> str:
        if self.dialect is Dialect.FNO:
            if isinstance(node.comparator, ast.In):
                raise QueryError(
                    "The query specified in the URI is not valid: the operator 'in' is not supported."
                )
            left = node.left
            enum = isinstance(left, ast.Identifier) and self.columns.get(left.name) is Kind.ENUM
            if enum and not isinstance(node.comparator, (ast.Eq, ast.NotEq)):
                # odata.md, "Using Enums": "The operations supported for enums are eq and ne."
                raise QueryError("The query specified in the URI is not valid: enums support only eq and ne.")
            wildcard = isinstance(node.right, ast.String) and "*" in node.right.val
            if wildcard and isinstance(node.comparator, (ast.Eq, ast.NotEq)):
                assert isinstance(node.right, ast.String)
                pattern = node.right.val.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                pattern = pattern.replace("*", "%").replace("'", "''")
                op = "LIKE" if isinstance(node.comparator, ast.Eq) else "NOT LIKE"
                return f"{self.visit(node.left)} {op} '{pattern}' ESCAPE '\\'"
        return str(super().visit_Compare(node))

    def visit_Identifier(self, node: ast.Identifier) -> str:
        if node.namespace or node.name not in self.columns:
            full = ".".join((*node.namespace, node.name))
            raise QueryError(f"Could not find a property named '{full}'.", prop=full)
        self.used.add(node.name)
        return '"' + node.name + '"'

    def visit_DateTime(self, node: ast.DateTime) -> str:
        try:
            dt = datetime.fromisoformat(node.val.replace("Z", "+00:00"))
        except ValueError as exc:
            raise QueryError(f"Unrecognized date time literal '{node.val}'.") from exc
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return "'" + dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + "'"

    def visit_Date(self, node: ast.Date) -> str:
        return f"'{node.val}'"

    def visit_GUID(self, node: ast.GUID) -> str:
        return f"'{node.val.lower()}'"


def parse_filter(text: str) -> ast._Node:
    """The ``$filter`` expression tree (F&O and metadata enum literals reduced to their labels)."""
    try:
        tree: ast._Node = _PARSER.parse(_LEXER.tokenize(strip_enum_prefixes(text)))
        return tree
    except (exceptions.ODataException, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise QueryError(f"Syntax error in $filter '{text}': {exc}") from exc


def compile_filter(
    text: str,
    columns: Mapping[str, Kind],
    used: set[str] | None = None,
    dialect: Dialect = Dialect.DATAVERSE,
) -> str:
    """Transpile an OData ``$filter`` to a SQLite WHERE clause over ``columns`` (storage names)."""
    used = used if used is not None else set()
    if dialect is Dialect.FNO and _HAS.search(_STRING_LITERAL.sub("''", text)):
        raise QueryError("The query specified in the URI is not valid: the operator 'has' is not supported.")
    try:
        tree = _PARSER.parse(_LEXER.tokenize(strip_enum_prefixes(text)))
        sql = _Visitor(columns, used, dialect).visit(tree)
    except QueryError:
        raise
    except (exceptions.ODataException, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise QueryError(f"Syntax error in $filter '{text}': {exc}") from exc
    return str(sql)


def compile_orderby(text: str, columns: Mapping[str, Kind]) -> str:
    parts = []
    for item in text.split(","):
        m = _ORDER_ITEM.match(item)
        if m is None:
            raise QueryError(f"Syntax error in $orderby '{text}'.")
        name, direction = m.group(1), (m.group(2) or "asc").upper()
        if name not in columns:
            raise QueryError(f"Could not find a property named '{name}'.", prop=name)
        parts.append(f'"{name}" {direction}')
    return ", ".join(parts)


def _non_negative(name: str, value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise QueryError(
            f"Invalid value '{value}' for {name} query option; a non-negative integer is expected."
        )
    return n


def parse_options(
    query: Mapping[str, str],
    columns: Mapping[str, Kind],
    *,
    allow_skip: bool = True,
    allowed: frozenset[str] = frozenset(),
    dialect: Dialect = Dialect.DATAVERSE,
) -> QueryOptions:
    """Parse the system query options; unknown ``$`` options and bad values raise ``QueryError``."""
    opts = QueryOptions()
    known = {"$filter", "$select", "$orderby", "$top", "$skip", "$count", "$skiptoken", "$format"} | allowed
    for name in query:
        if name.startswith("$") and (name not in known or (name == "$skip" and not allow_skip)):
            raise QueryError(f"The query parameter '{name}' is not supported.")
    if text := query.get("$filter", ""):
        opts.filter_text = text
        opts.filter_sql = compile_filter(text, columns, opts.filtered_columns, dialect)
    if "$select" in query:
        names = tuple(s.strip() for s in query["$select"].split(",") if s.strip())
        for n in names:
            if n not in columns:
                raise QueryError(f"Could not find a property named '{n}'.", prop=n)
        opts.select = names
    if text := query.get("$orderby", ""):
        opts.order_sql = compile_orderby(text, columns)
    if "$top" in query:
        opts.top = _non_negative("$top", query["$top"])
    if "$skip" in query:
        opts.skip = _non_negative("$skip", query["$skip"])
    if "$count" in query:
        value = query["$count"].lower()
        if value not in ("true", "false"):
            raise QueryError(f"Invalid value '{query['$count']}' for $count; 'true' or 'false' is expected.")
        opts.count = value == "true"
    return opts


# ---------------------------------------------------------------------------- paging
def encode_skiptoken(offset: int, fingerprint: str) -> str:
    """Opaque to clients; binds the offset to the query it continues."""
    raw = json.dumps({"o": offset, "q": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_skiptoken(token: str, fingerprint: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset = int(data["o"])
        same = data["q"] == fingerprint
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise QueryError("The $skiptoken is not valid.") from exc
    if not same or offset < 0:
        raise QueryError("The $skiptoken does not belong to this query.")
    return offset


def page_size(prefer: Mapping[str, str | None], default: int, maximum: int) -> tuple[int, bool]:
    """(page size, whether the client's ``odata.maxpagesize`` preference was applied)."""
    raw = prefer.get("odata.maxpagesize")
    if raw is None:
        return default, False
    try:
        n = int(raw)
    except ValueError:
        return default, False
    if n <= 0:
        return default, False
    return min(n, maximum), True
