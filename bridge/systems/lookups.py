"""Lookups of a whole window at once: the references many records need, read from Dataverse in a
few queries (``key eq 'a' or key eq 'b' …``, up to ``CHUNK`` values each) into the client's lookup
caches, instead of one query per record. What is not found is left to the one-by-one resolution,
which then answers None (the record's error says the reference is missing)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from bridge.core.compare import LookupNeed
from bridge.core.events import System
from bridge.systems.dataverse import COMPANY_LOOKUP, DataverseClient
from bridge.systems.odata import literal
from bridge.systems.sides import CdsSide

CHUNK = 40  # values per query: the URL stays well under the services' 32 KB limit


async def prefetch(
    client: DataverseClient, lookups: CdsSide, company: str, needs: Iterable[LookupNeed]
) -> None:
    """Fill the caches for ``needs`` that are not in them yet."""
    by_natural: dict[tuple[str, str], set[str]] = defaultdict(set)  # F&O ids -> GUIDs wanted
    by_guid: dict[tuple[str, str], set[str]] = defaultdict(set)  # GUIDs -> natural keys wanted
    for need in needs:
        table = (need.spec.cds_entity_set, need.spec.cds_key_field)
        if need.source is System.SCM:
            if client.known_id(table[0], company, table[1], need.value) is None:
                by_natural[table].add(need.value)
        elif client.known_key(table[0], need.value, table[1]) is None:
            by_guid[table].add(need.value)
    company_id = await client.company_id(company) if by_natural else None
    for (entity_set, key_field), values in by_natural.items():
        if company_id is None:
            break
        primary = lookups.primary_id(entity_set)
        for chunk in _chunks(sorted(values)):
            keys = " or ".join(f"{key_field} eq {literal(v)}" for v in chunk)
            rows = await client.query(
                entity_set,
                filter=f"{COMPANY_LOOKUP} eq {company_id} and ({keys})",
                select=[primary, key_field],
            )
            for row in rows:
                if row.get(primary) and row.get(key_field) is not None:
                    client.remember(entity_set, company, key_field, str(row[key_field]), str(row[primary]))
    for (entity_set, key_field), values in by_guid.items():
        primary = lookups.primary_id(entity_set)
        for chunk in _chunks(sorted(values)):
            ids = " or ".join(f"{primary} eq {v}" for v in chunk)
            for row in await client.query(entity_set, filter=ids, select=[primary, key_field]):
                if row.get(primary) and row.get(key_field) is not None:
                    client.remember_key(entity_set, str(row[primary]), key_field, str(row[key_field]))


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]
