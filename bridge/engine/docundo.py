"""Undo of a document's change set whose synchronous originator gave up (its Dataverse transaction
rolled back after F&O committed the document): the entity maps' undo (``bridge.engine.journal``,
``bridge.engine.recovery``) for a whole document.

Before the change set goes, the undo journal gets what F&O held (the ledger's last written state,
None for a new document) and what the set writes, so the undo is known even after a crash. The undo
brings F&O back as one change set: a new document -> its header deleted (F&O deletes a sales
order's or an invoice's lines with it); an update -> the previous header and lines written back.
It reads F&O first, so it holds whether or not the set had committed. The ledger goes back too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bridge.core import docrules
from bridge.core.docmap import DocumentMap
from bridge.core.events import ChangeEvent, System, record_key
from bridge.core.ledger import LedgerEntry
from bridge.engine.journal import journal_id
from bridge.engine.records import ledger_from_json, ledger_to_json, replace_ledger
from bridge.engine.sideports import DocumentSide, DocWrite
from bridge.state.base import StatePort


@dataclass(frozen=True, slots=True, kw_only=True)
class DocUndo:
    """What a document's change set changed on F&O, to put it back."""

    dmap: DocumentMap
    company: str
    source_key: str  # the change's key (the Dataverse header's row id): the ledger's
    key: str  # the header's key on F&O
    before: dict[str, Any] | None  # {header, lines, key}; None: the set created the document
    written: dict[str, Any]  # {header, lines}: what the set wrote
    ledger_before: LedgerEntry | None


async def journal_document(state: StatePort, event: ChangeEvent, undo: DocUndo) -> bool:
    """Write the undo entry of a synchronous document change before its change set; True if written
    by this call (an earlier attempt's entry is kept: its "before" is the true one)."""
    entry_id = journal_id(event)
    if entry_id is None:
        return False
    return await state.put_journal(
        entry_id,
        {
            "target": System.SCM.value,
            "document": {"key": undo.key, "before": undo.before, "written": undo.written},
            "ledger_before": None if undo.ledger_before is None else ledger_to_json(undo.ledger_before),
        },
    )


def from_journal(entry: dict[str, Any], dmap: DocumentMap, event: ChangeEvent) -> DocUndo:
    doc = entry["document"]
    ledger = entry.get("ledger_before")
    return DocUndo(
        dmap=dmap,
        company=event.company,
        source_key=event.key,
        key=str(doc["key"]),
        before=doc["before"],
        written=dict(doc["written"]),
        ledger_before=None if ledger is None else ledger_from_json(ledger),
    )


async def undo_document(side: DocumentSide, state: StatePort, undo: DocUndo) -> None:
    """Put F&O and the ledger back as they were before the change set (F&O's refusal raises)."""
    writes = await _restore_writes(side, undo)
    await side.changeset(System.SCM, writes)
    await state.put_ledger(_ledger_after_undo(undo))


async def _restore_writes(side: DocumentSide, undo: DocUndo) -> list[DocWrite]:
    dmap = undo.dmap
    hkeys = docrules.header_keys(dmap, undo.key)
    if undo.before is None:
        current = await side.get(System.SCM, dmap.scm.entity_set, hkeys)
        return [] if current is None else [DocWrite("DELETE", dmap.scm.entity_set, hkeys)]
    writes = [DocWrite("PATCH", dmap.scm.entity_set, hkeys, dict(undo.before.get("header", {})))]
    before_lines = dict(undo.before.get("lines", {}))
    written_lines = dict(undo.written.get("lines", {}))
    for line in dmap.lines:
        parent = {dmap.scm.company_field: dmap.company.lower(), line.scm.parent_field: undo.key}
        held = {row.get(line.key.target) for row in await side.find(System.SCM, line.scm.entity_set, parent)}
        wanted = {old["key"]: old for old in before_lines.values() if old["collection"] == line.name}
        for new in written_lines.values():  # written by the set, not there before: removed
            if new["collection"] == line.name and new["key"] not in wanted and new["key"] in held:
                keys = docrules.line_keys(dmap, line, undo.key, new["key"])
                writes.insert(1, DocWrite("DELETE", line.scm.entity_set, keys))
        for key, old in wanted.items():
            keys = docrules.line_keys(dmap, line, undo.key, key)
            if key in held:
                writes.append(DocWrite("PATCH", line.scm.entity_set, keys, dict(old["body"])))
            else:  # removed by the set
                writes.append(DocWrite("POST", line.scm.entity_set, keys, {**old["body"], **keys}))
    return writes


def _ledger_after_undo(undo: DocUndo) -> LedgerEntry:
    """The ledger's entry as before the change set, F&O's write time now; a document never
    written before is left unwritten (its next save creates it), not deleted."""
    now = datetime.now(UTC)
    if undo.ledger_before is not None:
        return replace_ledger(undo.ledger_before, scm_written_at=now, updated_at=now)
    return LedgerEntry(
        record_key=record_key(undo.dmap.name, undo.company, undo.source_key),
        entity=undo.dmap.name,
        company=undo.company,
        key=undo.source_key,
        cds_id=None,
        cds_image={},
        scm_image={},
        scm_written_at=now,
        deleted=False,
        updated_at=now,
    )
