"""Pairing the records of both systems by company and natural key, while they stream in pages.

Both systems are read ordered by the natural key (``$orderby``), one company at a time, page by
page. ``Pairer`` takes each page as it comes and hands out a ``RecordPair`` as soon as it is known:
a match at once, a record on one side only once the other side's reading has passed its key (or
ended). So it holds only the records between the two readers' positions, not a whole table, and
``watermark`` says up to which key everything was handed out: the key a resumed run reads on from.

Keys compare case-blind (both systems key text case-insensitively: SQL Server's ``_CI_`` collations,
the emulators' ``COLLATE NOCASE``), so the order here is the order the systems answer in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.core.events import System


def key_order(key: str, company: str = "") -> tuple[str, str]:
    """The sort key of a record, as the systems order text (case-insensitively): company, then key."""
    return company.casefold(), key.casefold()


@dataclass(frozen=True, slots=True)
class SideRecord:
    """One record as one system holds it: its company (upper case), natural key and full row."""

    company: str
    key: str
    image: dict[str, Any]  # Web API read form (lookups as _x_value on Dataverse)
    record_id: str | None = None  # Dataverse GUID; None on F&O
    etag: str | None = None
    modified_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RecordPair:
    """A record by (company, key), with what each side holds of it (None: missing there)."""

    company: str
    key: str
    cds: SideRecord | None
    scm: SideRecord | None

    def side(self, system: System) -> SideRecord | None:
        return self.cds if system is System.CDS else self.scm

    @property
    def only_on(self) -> System | None:
        """The side that holds the record when the other does not."""
        if self.cds is not None and self.scm is None:
            return System.CDS
        if self.scm is not None and self.cds is None:
            return System.SCM
        return None


class Pairer:
    """Pairs the pages of both sides: pairs match on company and key. Both sides must come in the
    same order (by company, then key); ``watermark`` is meant for a run of one company at a time."""

    def __init__(self) -> None:
        self._waiting: dict[System, dict[tuple[str, str], SideRecord]] = {System.CDS: {}, System.SCM: {}}
        self._cursor: dict[System, tuple[str, str] | None] = {System.CDS: None, System.SCM: None}
        self._last_key: dict[System, str | None] = {System.CDS: None, System.SCM: None}
        self._ended: set[System] = set()

    @property
    def waiting(self) -> int:
        """Records read but not yet handed out (the buffer between the two readers)."""
        return sum(len(w) for w in self._waiting.values())

    def add(self, side: System, records: Iterable[SideRecord]) -> list[RecordPair]:
        """Take one page of ``side`` (in key order); returns the pairs now known."""
        out: list[RecordPair] = []
        mine, theirs = self._waiting[side], self._waiting[side.other]
        for record in records:
            ident = (record.company.upper(), record.key)
            match = theirs.pop(ident, None)
            if match is not None:
                out.append(_pair(side, record, match))
            else:
                mine[ident] = record
            order = key_order(record.key, record.company)
            current = self._cursor[side]
            if current is None or order >= current:
                self._cursor[side], self._last_key[side] = order, record.key
        out.extend(self._settle(side.other))
        if side.other in self._ended:  # nothing more can match: this page's own records go at once
            out.extend(self._settle(side))
        return out

    def end(self, side: System) -> list[RecordPair]:
        """``side`` has no more pages: what the other side still holds is missing there."""
        self._ended.add(side)
        return self._settle(side.other)

    def finish(self) -> list[RecordPair]:
        """Both sides read to the end: everything still waiting, as one-sided pairs."""
        self._ended.update(System)
        return self._settle(System.CDS) + self._settle(System.SCM)

    def _settle(self, side: System) -> list[RecordPair]:
        """``side``'s waiting records whose key the other reader has passed (or that it never had)."""
        other = side.other
        waiting = self._waiting[side]
        if not waiting:
            return []
        passed = self._cursor[other]
        if other in self._ended:
            ready = list(waiting)
        elif passed is None:
            return []
        else:
            ready = [ident for ident in waiting if key_order(ident[1], ident[0]) <= passed]
        return [_pair(side, waiting.pop(ident), None) for ident in ready]

    @property
    def watermark(self) -> str | None:
        """The greatest key up to which (in key order) every record of both sides was handed out;
        None before both sides have read something or when nothing is known yet."""
        live = [s for s in System if s not in self._ended]
        if not live:
            return max((k for k in self._last_key.values() if k is not None), key=key_order, default=None)
        keys = [self._last_key[s] for s in live]
        if any(k is None for k in keys):
            return None
        return min((k for k in keys if k is not None), key=key_order)


def _pair(side: System, record: SideRecord, other: SideRecord | None) -> RecordPair:
    cds, scm = (record, other) if side is System.CDS else (other, record)
    return RecordPair(record.company.upper(), record.key, cds, scm)
