"""Document maps: a header table with child collections (lines), one way, with declared filters and
computed values (``kind: document`` in a mapping file; format in docs/mappings.md).

A ``DocumentMap`` is an ``EntityMap`` (so the engine, the metrics, the dashboard and ``/api/`` list it
by name like the five entity maps) whose header and lines are described by ``values``: one target
column each, computed from the source row by a declared rule (a column with a value map, a
constant, a setting of the map, a rule table, a factor, a lookup), never coded per entity.
Evaluation lives in ``bridge.core.docrules``; everything here is validation (``ConfigError`` naming
the field).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from bridge.core.entitymap import Direction, EntityMap, FieldMap, Name, _Model
from bridge.core.errors import ConfigError
from bridge.core.events import System
from bridge.core.valuemaps import BUILTIN_MAPS, EnumMap, ValueMap

FILTER_TESTS = ("equals", "not_equals", "one_of", "none_of")
HEADER_PREFIX = "header."
# A source column; on a line, "header.<column>" reads the line's header (as this save sees it).
Column = Annotated[str, StringConstraints(pattern=r"^(header\.)?[A-Za-z_][A-Za-z0-9_]*$")]


class Filter(_Model):
    """One condition on a source column; a row passes when every filter of its part holds."""

    column: Column
    equals: Any = None
    not_equals: Any = None
    one_of: list[Any] | None = None
    none_of: list[Any] | None = None
    why: str | None = Field(default=None, description="Said when the filter keeps a row out")

    @model_validator(mode="after")
    def _one_test(self) -> Filter:
        given = [t for t in FILTER_TESTS if t in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(FILTER_TESTS)} (got {len(given)})")
        return self

    @property
    def test(self) -> str:
        return next(t for t in FILTER_TESTS if t in self.model_fields_set)


class RuleRow(_Model):
    """One row of a rule table: the inputs' values (``"*"`` = any), then a column or a value."""

    when: list[Any]
    take: Column | None = Field(default=None, description="The source column whose value is the result")
    value: Any = None

    @model_validator(mode="after")
    def _one_result(self) -> RuleRow:
        if ("take" in self.model_fields_set) == ("value" in self.model_fields_set):
            raise ValueError("give exactly one of take (a column) or value")
        return self


class RuleTable(_Model):
    """A decision table: the first row whose ``when`` matches the inputs gives the result."""

    inputs: list[Column] = Field(min_length=1)
    rows: list[RuleRow] = Field(min_length=1)
    empty_as: dict[Column, Any] = Field(
        default_factory=dict, description="An input read empty counts as this value (a blank Yes/No: false)"
    )
    otherwise: Literal["reject", "null"] = "reject"


class ValueLookup(_Model):
    """A Dataverse reference. To F&O: the referenced row's ``key_field`` (the GUID's natural key). To
    Dataverse: the GUID of the ``entity_set`` row whose ``key_field`` equals the value, written as
    ``<nav>@odata.bind`` (global tables: no company filter)."""

    entity_set: Name
    key_field: Name
    id_field: Name | None = Field(default=None, description="Primary id column (to Dataverse)")
    nav: Name | None = Field(default=None, description="Navigation property; default: the target")


class Value(_Model):
    """One target column and the declared rule that computes it from the source row."""

    model_config = _Model.model_config | {"populate_by_name": True}

    target: Name
    source: Column | None = Field(default=None, alias="from")
    constant: Any = None
    setting: Name | None = None
    rule: RuleTable | None = None
    map: Name | None = None
    multiply: float | None = None
    divide: float | None = None
    lookup: ValueLookup | None = None
    required: bool = False
    default: Any = None

    @model_validator(mode="after")
    def _one_origin(self) -> Value:
        origins = [o for o in ("source", "constant", "setting", "rule") if o in self.model_fields_set]
        if len(origins) != 1:
            raise ValueError(f"give exactly one of from, constant, setting, rule (got {len(origins)})")
        if self.divide == 0:
            raise ValueError("divide by 0")
        return self

    @property
    def origin(self) -> str:
        return next(o for o in ("source", "constant", "setting", "rule") if o in self.model_fields_set)

    def source_columns(self) -> set[str]:
        if self.source is not None:
            return {self.source}
        if self.rule is not None:
            return set(self.rule.inputs) | {r.take for r in self.rule.rows if r.take}
        return set()


class LineCds(_Model):
    entity_set: Name
    logical_name: Name
    primary_id: Name
    parent: Name = Field(description="The lookup column to the header, e.g. msdyn_workorder")

    @property
    def parent_read(self) -> str:
        return f"_{self.parent}_value"


class LineScm(_Model):
    entity_set: Name
    entity_name: Name
    parent_field: Name = Field(description="The header's key on the line, e.g. SalesOrderNumber")


class LineCollection(_Model):
    """A child collection of the header: its table on each side, its key and filters, its values."""

    name: Name
    cds: LineCds
    scm: LineScm
    key: Value = Field(description="The line's key on the target (within the header)")
    filters: list[Filter] = Field(default_factory=list)
    values: list[Value] = Field(min_length=1)


class Guard(_Model):
    """A condition on the target's current header: updates and deletes are refused unless it holds."""

    column: Name
    equals: Any
    message: str


class DocumentMap(EntityMap):
    """A document: header (``cds``/``scm`` and ``values``) with ``lines``, flowing ``direction`` only."""

    kind: Literal["document"]
    direction: Literal[Direction.TO_SCM, Direction.TO_CDS]
    company: str = Field(pattern=r"^[A-Za-z0-9]{1,8}$", description="The F&O company synced")
    settings: dict[Name, Any] = Field(default_factory=dict)
    filters: list[Filter] = Field(default_factory=list)
    values: list[Value] = Field(min_length=1)
    lines: list[LineCollection] = Field(default_factory=list)
    update_only_when: Guard | None = None
    fields: list[FieldMap] = Field(default_factory=list, max_length=0)

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self._check_values("values", self.values, self.target_system)
        self._check_no_header_columns()
        for i, line in enumerate(self.lines):
            where = f"lines[{i}]"
            self._check_values(f"{where}.values", line.values, self.target_system)
            self._check_values(f"{where}.key", [line.key], self.target_system, single=True)
            if line.key.target in {v.target for v in line.values}:
                raise ConfigError(f"'{line.key.target}' is the line key; no value may write it", field=where)
        if self.lines and self.direction is not Direction.TO_SCM:
            raise ConfigError("lines are supported for documents from Dataverse to F&O", field="lines")
        names = [line.name for line in self.lines]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ConfigError(f"two collections are named '{name}'", field=f"lines[{i}].name")
        tables = [self.cds.logical_name, *(line.cds.logical_name for line in self.lines)]
        for i, table in enumerate(tables[1:]):
            if table in tables[: i + 1]:
                raise ConfigError(f"'{table}' is used twice in this document", field=f"lines[{i}].cds")

    # ------------------------------------------------------------ validation
    def _check_values(self, where: str, values: list[Value], target: System, *, single: bool = False) -> None:
        reserved = (
            {self.scm.key_field, self.scm.company_field} if target is System.SCM else {self.cds.key_field}
        )
        seen: set[str] = set()
        for i, v in enumerate(values):
            at = where if single else f"{where}[{i}]"
            if v.target in reserved:
                raise ConfigError(
                    f"'{v.target}' is the key or company; the bridge writes it", field=f"{at}.target"
                )
            if v.target in seen:
                raise ConfigError(f"'{v.target}' is written by two values", field=f"{at}.target")
            seen.add(v.target)
            if v.setting is not None and v.setting not in self.settings:
                raise ConfigError(f"unknown setting '{v.setting}'", field=f"{at}.setting")
            if v.map is not None:
                self.value_map(v.map, f"{at}.map")
            if v.rule is not None:
                for j, row in enumerate(v.rule.rows):
                    if len(row.when) != len(v.rule.inputs):
                        raise ConfigError(
                            f"{len(row.when)} values for {len(v.rule.inputs)} inputs",
                            field=f"{at}.rule.rows[{j}].when",
                        )
            if v.lookup is not None and target is System.CDS and v.lookup.id_field is None:
                raise ConfigError("a lookup written to Dataverse needs id_field", field=f"{at}.lookup")
            if v.lookup is not None and v.map is not None:
                raise ConfigError("a lookup takes no value map", field=f"{at}.map")

    def _check_no_header_columns(self) -> None:
        """``header.<column>`` is for lines: the header's own filters and values read its columns."""
        for i, f in enumerate(self.filters):
            if f.column.startswith(HEADER_PREFIX):
                raise ConfigError("header. columns are for lines", field=f"filters[{i}].column")
        for i, v in enumerate(self.values):
            if any(c.startswith(HEADER_PREFIX) for c in v.source_columns()):
                raise ConfigError("header. columns are for lines", field=f"values[{i}]")

    def value_map(self, name: str, where: str = "map") -> ValueMap:
        if name in self.value_maps:
            return EnumMap(name, self.value_maps[name].values)
        if name in BUILTIN_MAPS:
            return BUILTIN_MAPS[name]
        raise ConfigError(f"unknown value map '{name}'", field=where)

    # ------------------------------------------------------------ queries
    @property
    def source_system(self) -> System:
        return System.CDS if self.direction is Direction.TO_SCM else System.SCM

    @property
    def target_system(self) -> System:
        return self.source_system.other

    def line_of_table(self, logical_name: str) -> LineCollection | None:
        return next((line for line in self.lines if line.cds.logical_name == logical_name), None)

    def used_columns(self, *, header: bool) -> frozenset[str]:
        """Source columns the header's (or the lines') filters and values read, each also in its
        lookup read form (``_x_value``): a save that changes none of them has nothing to write."""
        names: set[str] = set()
        if header:
            names.add(self.cds.key_field)
            parts = [(self.filters, self.values)]
        else:
            names.update(line.cds.parent for line in self.lines)
            parts = [(line.filters, [*line.values, line.key]) for line in self.lines]
        for filters, values in parts:
            names.update(f.column for f in filters)
            for v in values:
                names.update(v.source_columns())
        if header:  # what the lines read of their header
            for line in self.lines:
                columns = {f.column for f in line.filters}
                for v in (*line.values, line.key):
                    columns |= v.source_columns()
                names.update(c.removeprefix(HEADER_PREFIX) for c in columns if c.startswith(HEADER_PREFIX))
        names = {n for n in names if not n.startswith(HEADER_PREFIX)}
        return frozenset(names | {f"_{n}_value" for n in names})

    def cds_tables(self) -> list[str]:
        """Every Dataverse table of the document (header first): its webhooks all come to this map."""
        return [self.cds.logical_name, *(line.cds.logical_name for line in self.lines)]
