"""The state port: the bridge's memory beside the queue.

- Ledger: per record, the last image synced (mapped fields, in both systems' names) and each side's
  row id and modified timestamp. Echo and conflict rules compare against it.
- Failures: every change that could not be applied, with both systems' messages, for admins.
- Failures have a life cycle (``FailureState``): open, retrying (an admin retried or replayed it),
  resolved (a later success of the record, the retry, the replay or a resync), discarded (by an
  admin); each change of state says who (the admin session or token) and when.
- Map states (``MapStatus``) per map, with the reason. "Failing" is not stored: the dashboard derives
  it (``bridge.ops.watcher.is_failing``).
- Activity: per map, what changed when (started, paused, resumed, alert fired, ...) and the last
  applied changes (direction, latency, trace id), the last N of each kept.

Implementations: ``bridge.state.sqlite`` (embedded default); a shared database next. One contract
suite (tests/contract/test_state_contract.py) runs against every one.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from bridge.core.ledger import LedgerEntry


class MapStatus(StrEnum):
    """A map's state as admins know it from dual-write (Failing is derived, never stored).

    - not-running: never started (a map may be kept so until an admin starts it); treated as stopped.
    - initializing: its initial sync runs; live changes queue meanwhile (held as when paused).
    - running: changes are applied.
    - paused: changes are received and queued, applied on resume.
    - stopped: changes are acknowledged and counted, nothing queued (what was queued before the stop
      is held and applied after a start).
    """

    NOT_RUNNING = "not-running"
    INITIALIZING = "initializing"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"

    @property
    def queues(self) -> bool:
        """Changes of the map go into the queue (else they are acknowledged, counted and dropped)."""
        return self not in (MapStatus.STOPPED, MapStatus.NOT_RUNNING)

    @property
    def applies(self) -> bool:
        """Queued changes of the map are leased and applied."""
        return self is MapStatus.RUNNING


class FailureState(StrEnum):
    OPEN = "open"
    RETRYING = "retrying"  # an admin retried it (or replayed its dead letter); its change is queued
    RESOLVED = "resolved"  # the record's change applied later (see ``Resolution``)
    DISCARDED = "discarded"  # an admin dropped it (or its dead letter)


# Failures still needing someone: the banner, the alert rules and the Failing state count these.
UNRESOLVED = (FailureState.OPEN, FailureState.RETRYING)


class Resolution(StrEnum):
    """How a failure was resolved (or, while retrying, by what it is being retried)."""

    LATER_SUCCESS = "later-success"  # a later change of the record applied
    RETRY = "retry"
    REPLAY = "replay"
    RESYNC = "resync"


@dataclass(frozen=True, slots=True)
class MapState:
    entity: str
    status: MapStatus
    reason: str | None = None
    changed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    entity: str
    company: str
    key: str
    direction: str  # "cds->scm" or "scm->cds"
    operation: str
    event_id: str
    source_message: str | None  # what the originating system said (e.g. compensation result)
    target_message: str | None  # what the target system said when it rejected the change
    kind: str  # "rejected", "retry-exhausted", "conflict", "compensation-failed", "timeout", ...
    correlation_id: str | None = None
    attempts: int = 1
    occurred_at: datetime | None = None
    compensated: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None  # assigned by the store
    state: FailureState = FailureState.OPEN
    state_changed_at: datetime | None = None  # None while open as recorded
    state_by: str | None = None  # who acted: "admin token", "admin session 1a2b3c4d"; None = the bridge
    resolution: Resolution | None = None  # how it was (or is being) resolved


class ActivityKind(StrEnum):
    """What an activity entry says happened to a map."""

    STARTED = "started"
    STOPPED = "stopped"
    PAUSED = "paused"
    RESUMED = "resumed"  # with the resume mode
    INITIALIZING = "initializing"
    ALERT_FIRED = "alert-fired"
    MAPPING_RELOADED = "mapping-reloaded"
    DEAD_LETTERS_REPLAYED = "dead-letters-replayed"
    DEAD_LETTERS_DISCARDED = "dead-letters-discarded"
    FAILURE_RETRIED = "failure-retried"
    FAILURE_DISCARDED = "failure-discarded"
    RESYNCED = "resynced"
    APPLIED = "applied"  # one applied change (direction, latency, trace id)

    @property
    def category(self) -> ActivityCategory:
        return ActivityCategory.CHANGE if self is ActivityKind.APPLIED else ActivityCategory.EVENT


class ActivityCategory(StrEnum):
    """Each category of a map keeps its own last N entries, so a burst of applied changes never
    pushes out when the map was paused."""

    EVENT = "event"
    CHANGE = "change"


@dataclass(frozen=True, slots=True)
class Activity:
    entity: str
    kind: ActivityKind
    message: str = ""
    actor: str | None = None  # who acted; None = the bridge itself
    at: datetime | None = None  # defaults to now when stored
    direction: str | None = None  # applied changes: "cds->scm" or "scm->cds"
    key: str | None = None  # applied changes: "<company>/<key>"
    latency_s: float | None = None  # applied changes: received -> applied
    trace_id: str | None = None  # applied changes: the W3C trace id (32 hex digits) when traced
    id: int | None = None  # assigned by the store (increasing)


# ---- alert rules and parked conflicts (issue 20, items 6 and 7) -------------------------------


@dataclass(frozen=True, slots=True)
class StoredAlertRule:
    """One alert rule as the store keeps it (``bridge.ops.alerts.AlertRule`` is the typed form)."""

    entity: str  # a map name, or "*" for every map
    failures: int
    minutes: int
    action: str  # "pause" | "webhook" | "log" (bridge.settings.AlertAction)
    url: str | None = None
    id: int | None = None  # assigned by the store


class ConflictStatus(StrEnum):
    OPEN = "open"  # parked, waiting for an administrator
    RESOLVED = "resolved"  # an administrator chose a side and it was written to both systems


@dataclass(frozen=True, slots=True)
class ParkedConflict:
    """A conflict under ``conflict_policy: manual``: both sides changed the record since the last
    sync; nothing is written until an administrator picks a version. One open conflict per record:
    a later change of the same record updates it."""

    entity: str
    company: str
    key: str
    cds_values: dict[str, Any]  # Dataverse's current projection (its column names)
    scm_values: dict[str, Any]  # F&O's current projection (its column names)
    event_id: str  # the change that met the conflict (the newest one)
    cds_modified_at: datetime | None = None
    scm_modified_at: datetime | None = None
    detected_at: datetime | None = None  # set by the store when None
    status: ConflictStatus = ConflictStatus.OPEN
    winner: str | None = None  # "cds" | "scm" once resolved
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    id: int | None = None  # assigned by the store

    @property
    def record_key(self) -> str:
        return f"{self.entity}|{self.company}|{self.key}"


@runtime_checkable
class StatePort(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    # ledger
    async def get_ledger(self, record_key: str) -> LedgerEntry | None: ...

    async def put_ledger(self, entry: LedgerEntry, *, drop_journal_of: str | None = None) -> None:
        """Insert or replace ``entry``; with ``drop_journal_of``, drop that event's undo entry in the
        same durable step (the write it guarded is recorded)."""
        ...

    async def find_ledger_by_cds_id(self, cds_id: str) -> LedgerEntry | None: ...

    # failures
    async def add_failure(self, failure: Failure) -> int:
        """Store ``failure`` (open); returns its id (increasing). The record's retrying failures go
        back to open in the same step: their retry failed, and the new failure says why."""
        ...

    async def failures(
        self,
        *,
        entity: str | None = None,
        offset: int = 0,
        limit: int = 100,
        states: Collection[FailureState] = (),
    ) -> list[Failure]:
        """Newest first; ``states`` empty = every state."""
        ...

    async def count_failures(
        self,
        *,
        entity: str | None = None,
        since: datetime | None = None,
        exclude_kinds: Collection[str] = (),
        states: Collection[FailureState] = (),
    ) -> int: ...

    async def set_failure_state(
        self,
        failure_ids: Collection[int] = (),
        *,
        event_ids: Collection[str] = (),
        state: FailureState,
        by: str | None,
        resolution: Resolution | None = None,
        only: Collection[FailureState] = UNRESOLVED,
    ) -> list[int]:
        """Move the failures named (by id, or by their change's event id) that are in one of the
        states ``only`` to ``state``, stamped now with ``by`` and ``resolution``; returns their ids."""
        ...

    async def resolve_record(
        self, entity: str, company: str, key: str, *, resolution: Resolution, by: str | None = None
    ) -> int:
        """A change of the record applied: its open and retrying failures become resolved. A retrying
        one keeps what it was retried by (its ``resolution`` and ``state_by``); an open one takes
        ``resolution`` and ``by``. Returns how many."""
        ...

    async def find_failures(self, *, correlation_id: str) -> list[Failure]: ...

    async def get_failure(self, failure_id: int) -> Failure | None: ...

    # map states
    async def get_map_state(self, entity: str) -> MapState: ...  # default RUNNING when never set

    async def set_map_state(self, state: MapState) -> None: ...

    # activity
    async def add_activity(self, entries: Sequence[Activity], *, keep: int) -> None:
        """Store the entries (one durable step), then keep only the last ``keep`` of each map's
        category (``ActivityKind.category``)."""
        ...

    async def activity(
        self,
        *,
        entity: str | None = None,
        category: ActivityCategory | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> list[Activity]:
        """Newest first (by id)."""
        ...

    async def count_activity(
        self, *, entity: str | None = None, category: ActivityCategory | None = None
    ) -> int: ...

    # undo journal: what a synchronous write is about to change, written before the write, so a
    # write whose originator rolled back can be undone even after a crash of the bridge
    async def put_journal(self, event_id: str, entry: dict[str, Any]) -> bool:
        """Store the entry unless ``event_id`` has one (an earlier attempt's "before" is the true
        one); True if stored. Durable before return."""
        ...

    async def get_journal(self, event_id: str) -> dict[str, Any] | None: ...

    async def drop_journal(self, event_id: str) -> None: ...

    # alert rules (bridge.state.sqlite_ops / memory_ops): settings seed an empty store, then the store
    # (changed through /api/alerts) is what the bridge uses, across restarts
    async def alert_rules(self) -> list[StoredAlertRule] | None:
        """Every stored rule by id; None when the store was never seeded nor changed."""
        ...

    async def seed_alert_rules(self, rules: list[StoredAlertRule]) -> bool:
        """Store ``rules`` if the store holds no rule set yet (never seeded); True if it did now."""
        ...

    async def put_alert_rule(self, rule: StoredAlertRule) -> int | None:
        """Insert (``id`` None) or replace the rule with ``rule.id``; its id, None if no such rule."""
        ...

    async def delete_alert_rule(self, rule_id: int) -> bool: ...

    # parked conflicts (conflict_policy: manual)
    async def park_conflict(self, conflict: ParkedConflict) -> int:
        """Store an open conflict, or update the open one of the same record (same id); its id."""
        ...

    async def conflicts(
        self, *, entity: str | None = None, status: ConflictStatus | None = None, limit: int = 100
    ) -> list[ParkedConflict]:
        """Newest first (by id)."""
        ...

    async def get_conflict(self, conflict_id: int) -> ParkedConflict | None: ...

    async def open_conflict_of(self, record_key: str) -> ParkedConflict | None: ...

    async def close_conflict(self, conflict_id: int, *, winner: str, by: str, at: datetime) -> bool:
        """Mark an open conflict resolved; False if it is not open (or does not exist)."""
        ...


# ---- initial sync runs: checkpoints and per-record errors (issue 21, items 1 to 3) ----------------


class SyncRunStatus(StrEnum):
    RUNNING = "running"  # started and not finished (a run whose process died stays so: resumable)
    DONE = "done"
    FAILED = "failed"  # stopped by an error that is not one record's (a system down): resumable too
    SUPERSEDED = "superseded"  # another request started a new run before this one finished


@dataclass(frozen=True, slots=True)
class SyncRun:
    """One ``dualwrite sync initial`` run over some maps: what it was asked, and how it stands."""

    maps: tuple[str, ...]  # in the order they are synced
    master: str  # "cds" | "scm": the side that wins differences
    companies: tuple[str, ...] = ()  # empty: every company
    dry_run: bool = False
    failed_only: bool = False
    status: SyncRunStatus = SyncRunStatus.RUNNING
    message: str | None = None  # why it failed, or a summary once done
    started_at: datetime | None = None  # set by the store when None
    finished_at: datetime | None = None
    id: int | None = None  # assigned by the store (increasing)


@dataclass(frozen=True, slots=True)
class SyncCheckpoint:
    """How far a run got with one map in one company and pass: every record with a key up to
    ``after_key`` (in key order) is done, ``done`` once all are. ``counts`` per side ("cds"/"scm")
    and figure (read, written, unchanged, failed), so a resumed run continues the figures."""

    run_id: int
    entity: str
    company: str
    pass_no: int  # 1, or 2 for the self-references of a map that refers to itself
    after_key: str | None = None
    done: bool = False
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    updated_at: datetime | None = None  # set by the store


@dataclass(frozen=True, slots=True)
class SyncRecordError:
    """A record a sync run could not bring together, with both systems' messages and the payload
    it tried to write. Open until a later run (or live change) brings the record together."""

    run_id: int
    entity: str
    company: str
    key: str
    target: str  # "cds" | "scm": the side the write went to
    operation: str  # "create" | "update" | "read" | "plan"
    target_message: str | None  # what the target said (or why the write could not be made)
    source_message: str | None = None  # what the source side said, or its values in brief
    payload: dict[str, Any] = field(default_factory=dict)
    fields: tuple[str, ...] = ()  # the differing columns it tried to write
    status: int | None = None  # the target's HTTP status, when it answered
    code: str | None = None  # the target's error code, or ours ("lookup-missing", "value-map")
    occurred_at: datetime | None = None  # set by the store when None
    resolved_at: datetime | None = None
    id: int | None = None  # assigned by the store


@runtime_checkable
class SyncStatePort(Protocol):
    """What a sync run keeps in the state store (the ``StatePort`` implementations also do this)."""

    async def start_sync_run(self, run: SyncRun) -> int:
        """Store a new run; its id (increasing)."""
        ...

    async def finish_sync_run(
        self, run_id: int, *, status: SyncRunStatus, message: str | None, at: datetime
    ) -> None: ...

    async def get_sync_run(self, run_id: int) -> SyncRun | None: ...

    async def sync_runs(self, *, limit: int = 20) -> list[SyncRun]:
        """Newest first."""
        ...

    async def put_sync_checkpoints(self, checkpoints: Sequence[SyncCheckpoint]) -> None:
        """Insert or replace (by run, map, company and pass), in one durable step."""
        ...

    async def sync_checkpoints(self, run_id: int) -> list[SyncCheckpoint]:
        """The run's checkpoints, by map, company and pass."""
        ...

    async def add_sync_errors(self, errors: Sequence[SyncRecordError]) -> None:
        """Store the errors (open), and in the same step resolve the earlier open errors of the same
        records: the newest error of a record says why it still fails."""
        ...

    async def sync_errors(
        self,
        *,
        entity: str | None = None,
        company: str | None = None,
        run_id: int | None = None,
        open_only: bool = False,
        offset: int = 0,
        limit: int = 100,
    ) -> list[SyncRecordError]:
        """Newest first."""
        ...

    async def count_sync_errors(
        self,
        *,
        entity: str | None = None,
        company: str | None = None,
        run_id: int | None = None,
        open_only: bool = False,
    ) -> int: ...

    async def resolve_sync_errors(
        self, entity: str, company: str, keys: Collection[str], *, at: datetime
    ) -> int:
        """The records were brought together: their open errors are resolved. Returns how many."""
        ...

    async def open_sync_error_keys(self, entity: str, company: str) -> list[str]:
        """The keys of the map's records in ``company`` with an open error (``--failed-only``), sorted."""
        ...

    async def put_ledger_entries(self, entries: Sequence[LedgerEntry]) -> None:
        """``StatePort.put_ledger`` of each entry, all in one durable step (a window's records)."""
        ...


def sync_store(state: StatePort) -> SyncStatePort:
    """``state`` as the sync runs' store: every ``StatePort`` implementation here is one too."""
    if not isinstance(state, SyncStatePort):
        raise TypeError(f"{type(state).__name__} keeps no sync runs (SyncStatePort)")
    return state
