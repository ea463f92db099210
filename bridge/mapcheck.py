"""``dualwrite mappings check [--dir mappings]``: validate the mapping files without starting anything.

Every file is checked, so one run lists every broken file, not only the first; then the files are
checked against each other (one map per name and per table).
"""

from __future__ import annotations

from pathlib import Path

from bridge.core.docmap import DocumentMap
from bridge.core.entitymap import Direction, EntityMap
from bridge.core.errors import ConfigError
from bridge.core.mapping import check_unique, load_mapping_file, mapping_files


def describe_document(dmap: DocumentMap) -> str:
    """A document map: its header tables, direction, company, lines, filters and values."""
    arrow = "->" if dmap.direction is Direction.TO_SCM else "<-"
    lines = "".join(
        f"; {line.name}: {line.cds.entity_set} {arrow} {line.scm.entity_set}, {len(line.values)} values"
        f", {len(line.filters)} filters"
        for line in dmap.lines
    )
    rules = sum(1 for v in [*dmap.values, *(v for line in dmap.lines for v in line.values)] if v.rule)
    return (
        f"ok    {dmap.name}: document {dmap.cds.entity_set} {arrow} {dmap.scm.entity_set} in {dmap.company}, "
        f"{len(dmap.values)} values, {len(dmap.filters)} filters{lines}; {rules} rule tables"
    )


def describe(emap: EntityMap) -> str:
    """One line per map: its tables, field counts by direction, lookups and policy."""
    if isinstance(emap, DocumentMap):
        return describe_document(emap)
    counts = {d: sum(1 for f in emap.fields if f.direction is d) for d in Direction}
    lookups = sum(1 for f in emap.fields if f.lookup is not None)
    by_direction = ", ".join(f"{n} {d.value}" for d, n in counts.items() if n)
    return (
        f"ok    {emap.name}: {emap.scm.entity_set} <-> {emap.cds.entity_set}, "
        f"{len(emap.fields)} fields ({by_direction}), {lookups} lookups, "
        f"conflict policy {emap.conflict_policy.value}"
    )


def check(directory: Path) -> tuple[bool, str]:
    """Validate every mapping file in ``directory``. Returns (all valid, report text)."""
    try:
        files = mapping_files(directory)
    except ConfigError as exc:
        return False, f"error {exc}"
    if not files:
        return False, f"error {directory}: no mapping files (*.yaml)"
    lines: list[str] = []
    loaded: list[tuple[str, EntityMap]] = []
    for path in files:
        try:
            emap = load_mapping_file(path)
        except ConfigError as exc:
            lines.append(f"error {exc}")
            continue
        loaded.append((str(path), emap))
        lines.append(describe(emap))
    ok = len(loaded) == len(files)
    try:
        check_unique(loaded)
    except ConfigError as exc:
        lines.append(f"error {exc}")
        ok = False
    verdict = "valid" if ok else "INVALID"
    lines.append(f"{len(loaded)} of {len(files)} mapping files loaded from {directory}: {verdict}")
    return ok, "\n".join(lines)
