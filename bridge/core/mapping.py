"""Loading the mapping files: ``load_mappings(directory) -> MappingSet``.

Every problem is a ``ConfigError`` naming the file and the field, e.g.
``mappings/warehouse.yaml:fields[3].map: unknown value map 'foo'``. The models themselves live in
``bridge.core.entitymap`` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bridge.core.docmap import DocumentMap
from bridge.core.entitymap import (
    CdsSide,
    ConflictPolicy,
    Direction,
    EntityMap,
    EnumTable,
    FieldMap,
    Lookup,
    LookupSpec,
    ScmSide,
)
from bridge.core.errors import ConfigError

__all__ = [
    "CdsSide",
    "ConflictPolicy",
    "Direction",
    "DocumentMap",
    "EntityMap",
    "EnumTable",
    "FieldMap",
    "Lookup",
    "LookupSpec",
    "MappingSet",
    "ScmSide",
    "load_mapping_file",
    "load_mappings",
    "mapping_files",
]

SUFFIXES = (".yaml", ".yml")


class MappingSet:
    """All entity maps, by name, with the indexes the listeners and the writer need."""

    def __init__(self, maps: dict[str, EntityMap]) -> None:
        self.maps = maps
        self._cds_logical = {m.cds.logical_name: m for m in maps.values()}
        for m in maps.values():  # a document's line tables send their webhooks to the document's map
            if isinstance(m, DocumentMap):
                self._cds_logical.update({table: m for table in m.cds_tables()})
        self._cds_set = {m.cds.entity_set: m for m in maps.values()}
        self._scm_set = {m.scm.entity_set: m for m in maps.values()}
        self._scm_event = {m.scm.event_name: m for m in maps.values()}

    def __iter__(self) -> Iterator[EntityMap]:
        return iter(self.maps.values())

    def __len__(self) -> int:
        return len(self.maps)

    def get(self, name: str) -> EntityMap | None:
        return self.maps.get(name)

    def record_maps(self) -> dict[str, EntityMap]:
        """The two-way maps of one record each: what an initial sync, a drift check and the catch-up
        compare. Document maps (one way, a header with its lines) are written whole by their next
        save or a resync instead."""
        return {name: m for name, m in self.maps.items() if not isinstance(m, DocumentMap)}

    def by_cds_logical_name(self, logical_name: str) -> EntityMap | None:
        return self._cds_logical.get(logical_name)

    def by_cds_entity_set(self, entity_set: str) -> EntityMap | None:
        return self._cds_set.get(entity_set)

    def by_scm_entity_set(self, entity_set: str) -> EntityMap | None:
        return self._scm_set.get(entity_set)

    def by_scm_event_name(self, primary_entity_name: str) -> EntityMap | None:
        """The map of an F&O data event's PrimaryEntityName, e.g. 'mserp_warehouse'."""
        return self._scm_event.get(primary_entity_name.lower())


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _mapping_no_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_no_duplicates)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for a bad dict key
            out += " (key)"
        else:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_mapping_file(path: Path, *, label: str | None = None) -> EntityMap:
    """Load and validate one mapping file. ``label`` names the file in errors (default: the path)."""
    where = label or str(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=where) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", file=where) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML{at}: {problem}", file=where) from None
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of keys (name, cds, scm, fields, ...)", file=where)
    model = DocumentMap if data.get("kind") == "document" else EntityMap
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        more = "".join(f"; {_loc(e['loc'])}: {e['msg']}" for e in errors[1:])
        raise ConfigError(f"{first['msg']}{more}", file=where, field=_loc(first["loc"]) or None) from None
    except ConfigError as exc:  # raised by EntityMap's own checks, which know the field only
        message = str(exc).removeprefix(f"{exc.field}: ") if exc.field else str(exc)
        raise ConfigError(message, file=where, field=exc.field) from None


def mapping_files(directory: Path) -> list[Path]:
    """The mapping files in ``directory``, sorted by name."""
    if not directory.is_dir():
        raise ConfigError("not a directory", file=str(directory))
    return sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES and p.is_file())


def check_unique(maps: list[tuple[str, EntityMap]]) -> None:
    """Names and both sides' tables must each belong to one map only."""
    keys: dict[str, Callable[[EntityMap], str]] = {
        "name": lambda m: m.name,
        "cds.entity_set": lambda m: m.cds.entity_set,
        "cds.logical_name": lambda m: m.cds.logical_name,
        "scm.entity_set": lambda m: m.scm.entity_set,
        "scm.entity_name": lambda m: m.scm.event_name,
    }
    for field, get in keys.items():
        seen: dict[str, str] = {}
        for where, emap in maps:
            values = [get(emap)]
            if field == "cds.logical_name" and isinstance(emap, DocumentMap):
                values = emap.cds_tables()  # a document's line tables belong to it alone too
            for value in values:
                if value in seen:
                    raise ConfigError(f"'{value}' is also used by {seen[value]}", file=where, field=field)
                seen[value] = where


def load_mappings(directory: Path) -> MappingSet:
    """Load every ``*.yaml``/``*.yml`` in ``directory``; the first problem raises ConfigError."""
    files = mapping_files(directory)
    if not files:
        raise ConfigError("no mapping files (*.yaml)", file=str(directory))
    loaded = [(str(p), load_mapping_file(p)) for p in files]
    check_unique(loaded)
    return MappingSet({m.name: m for _, m in loaded})
