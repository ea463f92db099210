"""In which order maps are brought together: referenced tables before what points at them.

A map depends on another when one of its lookups points at the other's Dataverse table (a customer
asset's category, at ``msdyn_customerassetcategories``). Lookups to tables no map covers (a
warehouse's operational site) must exist on both sides already: they are listed as ``external``.
A lookup to the map's own table (a warehouse's main refilling warehouse, an asset's parent) cannot
be written before the row it points at exists, so such maps take two passes: every record without
its self-references first, then the self-references (``self_reference_columns``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bridge.core.entitymap import EntityMap
from bridge.core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class MapStep:
    """One map in the order, with what it needs."""

    emap: EntityMap
    depends_on: tuple[str, ...]  # names of the maps that must be synced first
    external: tuple[str, ...]  # Dataverse tables it looks up that no map covers (must exist)
    self_references: tuple[str, ...]  # its Dataverse lookup columns pointing at its own table

    @property
    def name(self) -> str:
        return self.emap.name

    @property
    def passes(self) -> int:
        """1, or 2 when the map refers to itself (records first, self-references second)."""
        return 2 if self.self_references else 1


def self_reference_columns(emap: EntityMap) -> tuple[str, ...]:
    """The Dataverse columns (``FieldMap.cds``) of lookups into the map's own table, in file order."""
    return tuple(f.cds for f in emap.fields if f.lookup and f.lookup.cds_entity_set == emap.cds.entity_set)


def dependency_order(maps: Iterable[EntityMap]) -> list[MapStep]:
    """The maps in an order where every map comes after the maps its lookups point at; among
    maps free to go, by name (so the order is the same on every run). A cycle between different
    maps raises ``ConfigError`` naming them (no order could satisfy it)."""
    by_table = {m.cds.entity_set: m for m in maps}
    steps: dict[str, MapStep] = {}
    for emap in by_table.values():
        needs: set[str] = set()
        external: set[str] = set()
        for f in emap.fields:
            if f.lookup is None or f.lookup.cds_entity_set == emap.cds.entity_set:
                continue
            other = by_table.get(f.lookup.cds_entity_set)
            if other is None:
                external.add(f.lookup.cds_entity_set)
            else:
                needs.add(other.name)
        steps[emap.name] = MapStep(
            emap, tuple(sorted(needs)), tuple(sorted(external)), self_reference_columns(emap)
        )
    ordered: list[MapStep] = []
    done: set[str] = set()
    while len(ordered) < len(steps):
        ready = sorted(n for n, s in steps.items() if n not in done and set(s.depends_on) <= done)
        if not ready:
            stuck = sorted(set(steps) - done)
            raise ConfigError(f"the lookups of maps {', '.join(stuck)} form a cycle: no order syncs them")
        for name in ready:
            ordered.append(steps[name])
            done.add(name)
    return ordered


def order_for(maps: Iterable[EntityMap], names: Iterable[str]) -> list[MapStep]:
    """``dependency_order`` of all ``maps``, kept to ``names`` (a run of some maps keeps their order)."""
    wanted = set(names)
    return [s for s in dependency_order(maps) if s.name in wanted]
