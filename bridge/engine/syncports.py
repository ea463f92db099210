"""What a sync run (``bridge.engine.initial``; the drift check builds on the same) needs of the two
systems: each side's mapped table in key-ordered pages per company, bulk writes in ``$batch`` change
sets with one outcome per record, the companies, and lookups resolved in bulk.
``bridge.systems.bulk`` implements them over the system clients; composition hands them in.

Value types and protocols only (a port): it imports only the core.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bridge.core.compare import LookupNeed, WriteKind
from bridge.core.events import System
from bridge.core.mapping import EntityMap
from bridge.core.pairing import SideRecord


@dataclass(frozen=True, slots=True)
class InitialRequest:
    """What ``dualwrite sync initial`` asks (and ``POST /api/sync/initial`` carries)."""

    maps: tuple[str, ...]  # empty: every map
    master: System  # the side that wins differences
    companies: tuple[str, ...] = ()  # empty: every company either system knows
    dry_run: bool = False
    failed_only: bool = False


class SyncBusyError(Exception):
    """A run is going already (one at a time: two would write the same records)."""


class InitialSyncService(Protocol):
    """The bridge's initial sync, as the operations API reaches it."""

    async def start(self, request: InitialRequest) -> dict[str, Any]:
        """Start (or resume) a run in the background; its first figures. ``SyncBusyError`` while one
        runs, ``KeyError`` naming unknown maps."""
        ...

    def progress(self) -> dict[str, Any] | None:
        """The running (or last) run's figures, None when none ran since the bridge started."""
        ...


@dataclass(frozen=True, slots=True)
class Page:
    """One page of one side's records, in key order."""

    side: System
    records: list[SideRecord]
    read_at: datetime  # when its request was sent: every change made there before is in it
    last: bool  # no page follows


@dataclass(frozen=True, slots=True)
class BulkWrite:
    """One record's write in a change set: a create, or an update of the row read (``etag``: sent
    as If-Match, so a row changed since the read is not overwritten)."""

    company: str
    key: str
    kind: WriteKind
    payload: dict[str, Any]  # write form, without key and company (the side adds them)
    record_id: str | None = None  # Dataverse: the row to update
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class BulkOutcome:
    """What became of one ``BulkWrite``. Not ``ok``: ``changed_since`` when the row changed (or
    appeared) since it was read, so a live change of it is on its way; else ``message`` (the
    target's own words), ``status`` and ``code`` say why it was refused."""

    ok: bool
    record_id: str | None = None  # Dataverse: the row's id (a create's new one)
    etag: str | None = None
    changed_since: bool = False
    message: str | None = None
    status: int | None = None
    code: str | None = None
    retryable: bool = False  # the system was busy or down: the record is for a later run


@dataclass
class WriteFigures:
    """Requests sent by a side's bulk writer (for the figures and the bench)."""

    batches: int = 0
    operations: int = 0
    resent: int = 0  # operations sent again after their change set failed for another record
    by_kind: dict[str, int] = field(default_factory=dict)


class SyncSide(Protocol):
    @property
    def system(self) -> System: ...

    def pages(self, emap: EntityMap, company: str, *, after: str | None = None) -> AsyncIterator[Page]:
        """The map's rows in ``company``, key order, after the key ``after`` when given."""
        ...

    async def count(self, emap: EntityMap, company: str) -> int | None:
        """How many rows the map has in ``company`` (None: the system would not say)."""
        ...

    async def write(self, emap: EntityMap, writes: Sequence[BulkWrite]) -> list[BulkOutcome]:
        """Write in change sets up to the system's limit; one outcome per write, in order. Raises
        only when the system cannot be reached at all (``RetryableError``)."""
        ...

    @property
    def figures(self) -> WriteFigures: ...


class HeldChanges(Protocol):
    """Live changes queued (held while their map initializes): a record with one is left to it, so
    the run never writes over a change made while it ran."""

    async def held(self, entity: str, record_keys: Sequence[str]) -> set[str]:
        """The record keys among ``record_keys`` with a change of ``entity`` in the queue."""
        ...


class SyncSystems(Protocol):
    @property
    def cds(self) -> SyncSide: ...

    @property
    def scm(self) -> SyncSide: ...

    async def companies(self) -> list[str]:
        """Every company code either system knows, upper case, sorted."""
        ...

    async def resolve(self, company: str, needs: Sequence[LookupNeed]) -> dict[System, dict[str, str | None]]:
        """The references of one record in the other side's terms ({source: {spec name: value}});
        None for one the other side does not hold."""
        ...

    async def resolve_many(
        self, company: str, needs: Sequence[Sequence[LookupNeed]]
    ) -> list[dict[System, dict[str, str | None]]]:
        """``resolve`` for many records at once (a window's), asking each system as few times as it can."""
        ...

    def created(self, emap: EntityMap, company: str, key: str, cds_id: str) -> None:
        """A Dataverse row was just created: lookups to it resolve without asking again."""
        ...
