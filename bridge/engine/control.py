"""The admin controls (``bridge.engine.ports.Controller``) over the engine, queue and state.

Readiness probes each system through its own client, within a deadline the client's retries keep
to, so a system that does not answer is reported with its name, its URL and the last error (never a
bare ``TimeoutError``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bridge.core import rules
from bridge.core.deadline import deadline_scope
from bridge.core.errors import DualWriteError, SyncError
from bridge.core.events import ChangeEvent, Operation, SyncMode, System, record_key, utcnow
from bridge.core.kinds import FailureKind
from bridge.core.ledger import LedgerEntry
from bridge.core.mapping import DocumentMap, EntityMap
from bridge.engine.apply import Result
from bridge.engine.outcome import RETRY_MARK, Record, failure_record
from bridge.engine.ports import ConflictResolution, Readiness, ResumeMode, ResyncResult
from bridge.engine.worker import Engine
from bridge.queue.base import CapabilityMissing, DeadLetter, QueueCapability, QueuePort
from bridge.state.base import (
    ActivityKind,
    ConflictStatus,
    FailureState,
    MapState,
    MapStatus,
    Resolution,
    StatePort,
)

log = logging.getLogger(__name__)
_DRAIN_CHUNK = 1000
PROBE_S = 5.0  # each readiness probe; the clients' retries stop half a second before
READINESS_MAP = "readiness-probe"  # a map name no mapping has: the probe reads its (absent) state
NEITHER_SIDE = "the record exists on neither side: nothing to copy or delete"
SKIPPED_ON_RESUME = Record(
    kind=FailureKind.SKIPPED_ON_RESUME,
    target_message="skipped when the map resumed (skip to live); retry to apply it",
)


@dataclass(frozen=True, slots=True)
class Probe:
    """A readiness check: ``call`` raises when ``target`` (e.g. "Dataverse at https://…") is not usable."""

    call: Callable[[], Awaitable[object]]
    target: str


def probe_failure(target: str, exc: BaseException, seconds: float) -> str:
    """A failed probe as readiness details say it: what was probed, and the error's own text."""
    if isinstance(exc, SyncError):
        why = exc.message
    elif isinstance(exc, TimeoutError):
        why = f"no answer within {seconds:g}s"
    else:
        why = f"{type(exc).__name__}: {exc}" if str(exc) else repr(exc)
    return f"{target}: {why}"


class EngineController:
    def __init__(
        self, *, engine: Engine, queue: QueuePort, state: StatePort, probes: dict[str, Probe]
    ) -> None:
        self.engine = engine
        self.queue = queue
        self.state = state
        self.probes = probes  # name (cds, scm, tokens) -> its probe
        self._retries = 0

    def map_names(self) -> list[str]:
        return sorted(self.engine.applier.mappings.maps)

    def _targets(self, entity: str | None) -> list[str]:
        if entity is None:
            return self.map_names()
        if entity not in self.engine.applier.mappings.maps:
            raise KeyError(entity)
        return [entity]

    async def pause(self, entity: str | None, reason: str, *, actor: str | None = None) -> None:
        for name in self._targets(entity):
            await self._set_status(name, MapStatus.PAUSED, reason)
            await self.note(name, ActivityKind.PAUSED, reason, actor=actor)
            log.warning("map %s paused: %s", name, reason)

    async def resume(self, entity: str | None, mode: ResumeMode, *, actor: str | None = None) -> int:
        if mode is not ResumeMode.CATCH_UP and QueueCapability.MAP_BACKLOG not in self.queue.capabilities:
            # Refused before any map changes state: skipping needs the backlog of one map.
            raise CapabilityMissing(self.queue, QueueCapability.MAP_BACKLOG)
        touched = 0
        for name in self._targets(entity):
            backlog = 0
            if mode is ResumeMode.SKIP_DISCARD:
                backlog = await self.queue.purge(name)
            elif mode is ResumeMode.SKIP_KEEP:
                backlog = await self._backlog_to_failures(name)
            touched += backlog
            await self._set_status(name, MapStatus.RUNNING, None)
            await self.note(
                name, ActivityKind.RESUMED, f"mode {mode.value}, {backlog} backlog events", actor=actor
            )
            log.info("map %s resumed (%s, %d backlog events)", name, mode.value, backlog)
        self.engine.kick()
        return touched

    # ---- map states beyond pause/resume (issue 20) -----------------------------------------------

    async def _set_status(self, name: str, status: MapStatus, reason: str | None) -> None:
        """Stored first (it survives a restart), then carried into the engine."""
        await self.state.set_map_state(MapState(name, status, reason, datetime.now(UTC)))
        self.engine.hold(name, status)

    async def start(self, entity: str, *, actor: str | None = None) -> None:
        """Run a stopped (or paused, or never started) map: its held backlog is applied first."""
        name = self._targets(entity)[0]
        await self._set_status(name, MapStatus.RUNNING, None)
        await self.note(name, ActivityKind.STARTED, "started", actor=actor)
        log.info("map %s started", name)

    async def stop(self, entity: str, reason: str, *, actor: str | None = None) -> None:
        """Stop a map: its notifications are acknowledged and counted, nothing queued (what is
        queued already stays, held, until a start)."""
        name = self._targets(entity)[0]
        await self._set_status(name, MapStatus.STOPPED, reason)
        await self.note(name, ActivityKind.STOPPED, reason, actor=actor)
        log.warning("map %s stopped: %s", name, reason)

    async def initializing(self, entity: str, reason: str, *, actor: str | None = None) -> None:
        """The map's initial sync runs: live changes queue and are held (as when paused) until
        ``start``."""
        name = self._targets(entity)[0]
        await self._set_status(name, MapStatus.INITIALIZING, reason)
        await self.note(name, ActivityKind.INITIALIZING, reason, actor=actor)

    async def note(
        self, entity: str, kind: ActivityKind, message: str = "", *, actor: str | None = None
    ) -> None:
        """An entry in the map's activity log."""
        await self.engine.activity.note(entity, kind, message, actor=actor)

    async def _backlog_to_failures(self, entity: str) -> int:
        moved = 0
        while batch := await self.queue.drain(entity, _DRAIN_CHUNK):
            for item in batch:
                await self.state.add_failure(failure_record(item, SKIPPED_ON_RESUME, attempts=item.attempts))
            moved += len(batch)
        return moved

    async def retry_failure(self, failure_id: int, *, actor: str | None = None) -> bool:
        failure = await self.state.get_failure(failure_id)
        if failure is None or "event" not in failure.details:
            return False
        original = ChangeEvent.model_validate(failure.details["event"])
        self._retries += 1
        # A new id: the original is remembered by the dedupe window. Async now: the originator is long done.
        retry = original.model_copy(
            update={
                "event_id": f"{original.event_id}{RETRY_MARK}{failure_id}:{self._retries}",
                "mode": SyncMode.ASYNC,
                "received_at": utcnow(),
            }
        )
        # A dead-lettered change holds its record (later changes wait behind it): the retry of its
        # failure is the replay of that dead letter; otherwise the change is queued anew.
        letters = [d.seq for d in await self._dead_letters(None) if d.event.event_id == original.event_id]
        if letters:
            await self.queue.replay(letters)
        else:
            await self.queue.enqueue(retry)
        # Retrying, by whom; the retry's success resolves it (``outcome.resolution_of``). Any state:
        # an admin may retry a resolved or discarded failure again.
        await self.state.set_failure_state(
            [failure_id],
            state=FailureState.RETRYING,
            by=actor,
            resolution=Resolution.RETRY,
            only=tuple(FailureState),
        )
        await self.note(
            failure.entity, ActivityKind.FAILURE_RETRIED, _failure_text(failure_id, original), actor=actor
        )
        self.engine.kick()
        return True

    async def discard_failure(self, failure_id: int, *, actor: str | None = None) -> bool:
        """Mark an open or retrying failure discarded (an admin decided nothing is to be done);
        False if there is none such."""
        failure = await self.state.get_failure(failure_id)
        if failure is None or not await self.state.set_failure_state(
            [failure_id], state=FailureState.DISCARDED, by=actor
        ):
            return False
        await self.note(
            failure.entity,
            ActivityKind.FAILURE_DISCARDED,
            f"failure {failure_id} ({failure.company}/{failure.key}) discarded",
            actor=actor,
        )
        return True

    async def _dead_letters(self, seqs: list[int] | None) -> list[DeadLetter]:
        wanted = None if seqs is None else set(seqs)
        found: list[DeadLetter] = []
        offset = 0
        while page := await self.queue.dead_letters(offset=offset, limit=500):
            found += [d for d in page if wanted is None or d.seq in wanted]
            offset += len(page)
        return found

    async def replay_dead_letters(self, seqs: list[int] | None, *, actor: str | None = None) -> int:
        """Put dead letters (None = all) back in the queue; their failures are retrying by replay."""
        letters = await self._dead_letters(seqs)
        count = await self.queue.replay(seqs)
        await self.state.set_failure_state(
            event_ids=[d.event.event_id for d in letters],
            state=FailureState.RETRYING,
            by=actor,
            resolution=Resolution.REPLAY,
        )
        await self._note_letters(letters, ActivityKind.DEAD_LETTERS_REPLAYED, "replayed", actor)
        self.engine.kick()
        return count

    async def discard_dead_letters(self, seqs: list[int] | None, *, actor: str | None = None) -> int:
        """Drop dead letters (None = all) for good; their failures are discarded."""
        letters = await self._dead_letters(seqs)
        count = await self.queue.discard(seqs)
        await self.state.set_failure_state(
            event_ids=[d.event.event_id for d in letters], state=FailureState.DISCARDED, by=actor
        )
        await self._note_letters(letters, ActivityKind.DEAD_LETTERS_DISCARDED, "discarded", actor)
        return count

    async def _note_letters(
        self, letters: list[DeadLetter], kind: ActivityKind, verb: str, actor: str | None
    ) -> None:
        per_map: dict[str, int] = {}
        for d in letters:
            per_map[d.event.entity] = per_map.get(d.event.entity, 0) + 1
        for entity, n in sorted(per_map.items()):
            await self.note(entity, kind, f"{n} dead letter{'s' if n != 1 else ''} {verb}", actor=actor)

    async def resync(
        self, entity: str, company: str, key: str, from_side: System, *, actor: str | None = None
    ) -> ResyncResult:
        applier = self.engine.applier
        emap = applier.mappings.maps[entity]
        company = company.upper()
        if isinstance(emap, DocumentMap):
            return await self._resync_document(emap, company, key, from_side, actor)
        try:
            row = await applier.side(from_side).read(emap, company, key)
            if row is None and await applier.side(from_side.other).read(emap, company, key) is None:
                # Nothing to copy and nothing to delete: both sides already agree.
                return ResyncResult(entity, company, key, from_side, "unchanged", NEITHER_SIDE)
            ledger = await self.state.get_ledger(record_key(entity, company, key))
            operation = Operation.DELETE if row is None else Operation.UPDATE
            event = ChangeEvent(
                event_id=f"resync:{entity}:{company}:{key}:{utcnow().isoformat()}",
                source=from_side,
                entity=entity,
                company=company,
                key=key,
                operation=operation,
                record_id=row.record_id
                if row
                else (ledger.cds_id if ledger and from_side is System.CDS else None),
                image=row.image if row else None,
                changed={},
                source_timestamp=utcnow(),
            )
            if ledger is not None:
                # A forced resync: mark the record unsynced so neither the no-change nor the conflict
                # rule stands between the chosen side and the other.
                await self.state.put_ledger(
                    LedgerEntry(
                        record_key=ledger.record_key,
                        entity=entity,
                        company=company,
                        key=key,
                        cds_id=ledger.cds_id,
                        cds_image={},
                        scm_image={},
                        deleted=True,
                    )
                )
            applied = await applier.apply(event)
        except (SyncError, DualWriteError) as exc:
            return ResyncResult(entity, company, key, from_side, "failed", str(exc))
        wrote = applied.result is Result.APPLIED
        outcome = ("deleted" if operation is Operation.DELETE else "applied") if wrote else "unchanged"
        # Both sides now hold the chosen side's version: the record's failures are resolved.
        await self.state.resolve_record(entity, company, key, resolution=Resolution.RESYNC, by=actor)
        await self.note(
            entity, ActivityKind.RESYNCED, f"{company}/{key} from {from_side.value}: {outcome}", actor=actor
        )
        return ResyncResult(entity, company, key, from_side, outcome, applied.reason)

    async def _resync_document(
        self, dmap: DocumentMap, company: str, key: str, from_side: System, actor: str | None
    ) -> ResyncResult:
        """A document (``key``: its header's Dataverse id, or its F&O number from F&O): read it whole
        now and write what differs from the last sync, as its next save would."""
        if from_side is not dmap.source_system:
            why = f"{dmap.name} flows from {dmap.source_system.value} only"
            return ResyncResult(dmap.name, company, key, from_side, "failed", why)
        event = ChangeEvent(
            event_id=f"resync:{dmap.name}:{company}:{key}:{utcnow().isoformat()}",
            source=from_side,
            entity=dmap.name,
            company=company,
            key=key,
            operation=Operation.UPDATE,
            record_id=key if from_side is System.CDS else None,
            source_timestamp=utcnow(),
        )
        try:
            applied = await self.engine.applier.apply(event)
        except (SyncError, DualWriteError) as exc:
            return ResyncResult(dmap.name, company, key, from_side, "failed", str(exc))
        outcome = "applied" if applied.result is Result.APPLIED else "unchanged"
        await self.state.resolve_record(dmap.name, company, key, resolution=Resolution.RESYNC, by=actor)
        await self.note(
            dmap.name,
            ActivityKind.RESYNCED,
            f"{company}/{key} from {from_side.value}: {outcome}",
            actor=actor,
        )
        return ResyncResult(dmap.name, company, key, from_side, outcome, applied.reason)

    # ---- a parked conflict (conflict_policy: manual) -----------------------------------------------

    def conflict_map(self, entity: str) -> EntityMap | None:
        """The loaded map of a parked conflict (its field pairs, for the side-by-side view)."""
        return self.engine.applier.mappings.maps.get(entity)

    async def resolve_conflict(
        self, conflict_id: int, winner: System, edits: Mapping[str, Any], by: str
    ) -> ConflictResolution:
        """Write the administrator's choice to both systems: the winner's edits (if any) to the winner
        first, then the winner's row to the other side as a resync does; then mark the conflict
        resolved (by whom, when). A failure leaves it open, with the system's message."""
        conflict = await self.state.get_conflict(conflict_id)
        if conflict is None:
            return ConflictResolution(conflict_id, "not-found", f"no conflict {conflict_id}")
        if conflict.status is not ConflictStatus.OPEN:
            return ConflictResolution(
                conflict_id,
                "not-open",
                f"conflict {conflict_id} was resolved already ({conflict.winner} won)",
            )
        emap = self.engine.applier.mappings.maps.get(conflict.entity)
        if emap is None:
            return ConflictResolution(conflict_id, "invalid", f"map {conflict.entity} is not loaded")
        side = self.engine.applier.side(winner)
        try:
            row = await side.read(emap, conflict.company, conflict.key)
            if row is None:
                return ConflictResolution(
                    conflict_id, "failed", f"{conflict.company}/{conflict.key} is gone from {winner.value}"
                )
            try:
                rules.resolved_values(emap, winner, row.image, edits)
            except ValueError as exc:
                return ConflictResolution(conflict_id, "invalid", str(exc))
            if edits:
                await side.update(emap, conflict.company, conflict.key, row, dict(edits))
        except (SyncError, DualWriteError) as exc:
            return ConflictResolution(conflict_id, "failed", f"writing {winner.value}: {exc}")
        copied = await self.resync(conflict.entity, conflict.company, conflict.key, winner)
        if copied.outcome == "failed":
            return ConflictResolution(conflict_id, "failed", copied.message)
        await self.state.close_conflict(conflict_id, winner=winner.value, by=by, at=datetime.now(UTC))
        message = f"{winner.value} won{' (edited)' if edits else ''}; {copied.outcome}: {copied.message}"
        log.info(
            "conflict %d on %s %s/%s resolved by %s: %s",
            conflict_id,
            emap.name,
            conflict.company,
            conflict.key,
            by,
            message,
        )
        return ConflictResolution(conflict_id, "resolved", message, winner)

    async def _probe_state(self) -> None:
        """One read of the state store (a key lookup): it answers, and its tables are there."""
        await self.state.get_map_state(READINESS_MAP)

    async def readiness(self) -> Readiness:
        results: dict[str, bool] = {}
        details: dict[str, str] = {}

        async def check(name: str, probe: Probe) -> None:
            try:
                with deadline_scope(PROBE_S - 0.5):
                    await asyncio.wait_for(probe.call(), timeout=PROBE_S)
                results[name] = True
            except Exception as exc:  # readiness reports; it never raises
                results[name] = False
                details[name] = probe_failure(probe.target, exc, PROBE_S)

        probes = {
            "queue": Probe(self.queue.depth, "the queue"),
            "state": Probe(self._probe_state, "the state store"),
            **self.probes,
        }
        await asyncio.gather(*(check(n, p) for n, p in probes.items()))
        stopping = self.engine.stopping
        if stopping:
            details["replica"] = f"replica {self.engine.owner} is shutting down: its leases go back"
        return Readiness(
            queue=results.get("queue", False),
            state=results.get("state", False),
            cds=results.get("cds", False),
            scm=results.get("scm", False),
            tokens=results.get("tokens", False),
            details=details,
            replica=self.engine.owner,
            stopping=stopping,
        )


def _failure_text(failure_id: int, event: ChangeEvent) -> str:
    return f"failure {failure_id} ({event.company}/{event.key}) retried"
