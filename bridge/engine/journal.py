"""The undo journal: what a synchronous write is about to change on the target, written before the
write, so the write can be taken back even across a crash (``bridge.engine.recovery`` does that).

An entry is dropped with the ledger entry that records its write (``StatePort.put_ledger``'s
``drop_journal_of``), or by ``settle`` once the change is decided without one (refused, undone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.core.events import ChangeEvent, SyncMode, System
from bridge.core.ledger import LedgerEntry
from bridge.core.mapping import EntityMap
from bridge.engine.records import ledger_to_json, row_to_json
from bridge.engine.sideports import Row
from bridge.state.base import StatePort


@dataclass(frozen=True, slots=True, kw_only=True)
class Undo:
    """What a write changed on the target, to put it back."""

    target: System
    emap: EntityMap
    company: str
    key: str
    before: Row | None  # None: the write created the record
    deleted: bool = False  # the write was a delete
    ledger_before: LedgerEntry | None


def journal_id(event: ChangeEvent) -> str | None:
    """The undo entry ``event`` may have: a synchronous change is journalled before its write."""
    return event.event_id if event.mode is SyncMode.SYNC else None


class UndoJournal:
    def __init__(self, state: StatePort) -> None:
        self.state = state

    async def write(
        self,
        event: ChangeEvent,
        target: System,
        before: Row | None,
        ledger: LedgerEntry | None,
        *,
        deleted: bool,
    ) -> bool:
        """Write the undo entry of a synchronous change; True if this call wrote it."""
        entry_id = journal_id(event)
        if entry_id is None:
            return False
        # Kept if there: an earlier attempt may have written (timeout), so its "before" is the true one.
        return await self.state.put_journal(
            entry_id,
            {
                "target": target.value,
                "before": None if before is None else row_to_json(before),
                "ledger_before": None if ledger is None else ledger_to_json(ledger),
                "deleted": deleted,
            },
        )

    async def read(self, event: ChangeEvent) -> dict[str, Any] | None:
        return await self.state.get_journal(event.event_id)

    async def settle(self, event: ChangeEvent) -> None:
        """The change is decided without a ledger write (refused, undone): its entry is not needed."""
        entry_id = journal_id(event)
        if entry_id is not None:
            await self.state.drop_journal(entry_id)
