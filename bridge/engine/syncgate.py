"""A synchronous change that meets a pending change of the same record from the other side.

Dataverse runs a synchronous step inside the save's database transaction: the row stays locked
until our webhook answers. A change from F&O to the same record that is queued or in flight ahead of
the save writes into that locked row, so queueing the save behind it (per-record order) would wait
on a write that waits on the save: a deadlock that ends in timeouts, a rollback and a lost edit.

So such a save is decided at once by the map's conflict policy, the pending opposite change's
source timestamp against the save's (both have milliseconds; the systems' modified times only
seconds):

- the save loses: it is refused (409, with the policy's reason), Dataverse rolls it back, and the
  pending change lands as it would have anyway;
- the save wins: it is applied to F&O now. The ledger entry that records it makes every pending
  opposite change stale and superseded, so each is skipped when its turn comes; one already in flight
  into Dataverse finds the row changed (412) once the save commits, and the applier's second look
  at the ledger skips it too (``Applier._upsert``), instead of a read-and-retry that would undo the
  decision;
- the policy is ``manual``: the save is accepted at once, nothing is written to the other side, and
  the conflict is parked for an administrator (``bridge.engine.parking``). The pending change then
  meets the accepted save in its turn and updates the same parked conflict.

The save is queued durably first (as every synchronous change: a crash mid-way is undone from the
queue and the undo journal after the restart) and withdrawn from the queue once decided.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bridge.core import rules
from bridge.core.deadline import deadline_scope
from bridge.core.docmap import DocumentMap
from bridge.core.entitymap import ConflictPolicy
from bridge.core.errors import RetryableError, SyncError
from bridge.core.events import ChangeEvent, System
from bridge.core.kinds import FailureKind
from bridge.core.ledger import LedgerEntry
from bridge.engine.apply import Applier, direction
from bridge.engine.outcome import backoff_delay, backoff_wait
from bridge.engine.parking import park
from bridge.engine.recovery import Recovery
from bridge.metrics import Metrics
from bridge.queue.base import QueueCapability, QueuePort
from bridge.settings import SyncSettings
from bridge.state.base import Failure, StatePort

log = logging.getLogger(__name__)

SYSTEM_NAMES = {System.CDS: "Dataverse", System.SCM: "Finance and Operations"}


@dataclass(frozen=True, slots=True)
class Decision:
    """How a synchronous save and the newest pending change from the other side are settled."""

    save_wins: bool
    rival: ChangeEvent  # the newest pending change of the record from the other side
    reason: str
    parked: bool = False  # manual policy: accepted, neither side written, an administrator decides


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer to the waiting save."""

    ok: bool
    status: int
    message: str


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _iso(ts: datetime) -> str:
    return _utc(ts).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rivals(
    save: ChangeEvent, pending: Sequence[ChangeEvent], ledger: LedgerEntry | None
) -> list[ChangeEvent]:
    """The record's pending changes from the other side that are not applied yet: the ledger does not
    record them (a finished change can still be in the queue for a moment) and they are neither stale
    nor superseded by it (they would be skipped anyway)."""
    last = ledger.last_event_id if ledger is not None else None
    return [
        p
        for p in pending
        if p.source is save.source.other
        and p.event_id != last
        and not rules.is_stale(p, ledger)
        and not rules.is_superseded(p, ledger)
    ]


def decide(policy: ConflictPolicy, save: ChangeEvent, pending: Sequence[ChangeEvent]) -> Decision | None:
    """The decision for ``save`` against ``pending`` (the other side's unapplied changes of the same
    record, see ``rivals``); None when there are none (the save takes its turn as usual)."""
    if not pending:
        return None
    rival = max(pending, key=lambda e: _utc(e.source_timestamp))
    winner = rules.resolve_conflict(policy, save.source, save.source_timestamp, rival.source_timestamp)
    other, mine = SYSTEM_NAMES[rival.source], SYSTEM_NAMES[save.source]
    changed = f"{other} changed this record at {_iso(rival.source_timestamp)}"
    if winner is None:
        return Decision(False, rival, f"accepted: {changed} and the map's policy is {policy}", parked=True)
    if policy is ConflictPolicy.NEWER_WINS:
        changed += f", {'before' if winner is save.source else 'after'} this change in {mine}"
        changed += f" ({_iso(save.source_timestamp)})"
    if winner is save.source:
        return Decision(True, rival, f"accepted: {changed} and the map's policy is {policy}")
    return Decision(False, rival, f"conflict: {changed} and the map's policy is {policy}")


class SyncGate:
    """Decides a synchronous change at once when its record has pending changes from the other side
    (see the module docstring); otherwise stays out of the way."""

    def __init__(
        self,
        *,
        queue: QueuePort,
        state: StatePort,
        applier: Applier,
        recovery: Recovery,
        metrics: Metrics,
        settings: SyncSettings,
    ) -> None:
        self.queue = queue
        self.state = state
        self.applier = applier
        self.recovery = recovery
        self._wait = backoff_wait(settings.backoff_initial_s, settings.backoff_max_s)
        self.metrics = metrics
        self.settings = settings

    async def decide_ahead(self, save: ChangeEvent, deadline: datetime) -> Verdict | None:
        """For a synchronous change queued behind earlier events of its record: its answer, decided
        now, when one of those is from the other side; None to let it wait for its turn."""
        emap = self.applier.mappings.maps.get(save.entity)
        if (
            emap is None
            or isinstance(emap, DocumentMap)
            or QueueCapability.RECORD_VIEW not in self.queue.capabilities
        ):
            # A backend that cannot show one record's waiting events (Service Bus): the save waits
            # its turn as before the gate existed (docs/queue-and-state.md, capabilities).
            return None
        pending = [p for p in await self.queue.pending_of(save.record_key) if p.event_id != save.event_id]
        if not any(p.source is save.source.other for p in pending):
            return None
        ledger = await self.state.get_ledger(save.record_key)
        decision = decide(emap.conflict_policy, save, rivals(save, pending, ledger))
        if decision is None:
            return None
        log.info("%s %s/%s: %s", emap.name, save.company, save.key, decision.reason)
        if decision.parked:
            return await self._park(save, decision, deadline)
        if not decision.save_wins:
            if not await self.queue.withdraw(save.event_id):
                return None  # leased meanwhile: its rivals are done, so its turn came as usual
            await self._record(loser=save, winner=decision.rival, reason=decision.reason)
            self.metrics.skipped(save.entity, direction(save.source), "conflict-lost")
            return Verdict(False, 409, decision.reason)
        verdict, settled = await self._apply_now(save, deadline)
        if verdict.ok:
            await self._record(loser=decision.rival, winner=save, reason=decision.reason)
            verdict = Verdict(True, verdict.status, f"{verdict.message}; {decision.reason}")
        if settled:
            # Leased meanwhile (its rivals finished): the worker finds it applied (a no-op) or refused.
            await self.queue.withdraw(save.event_id)
        # else left queued: in its turn the worker finds its originator gone and takes back the write
        return verdict

    async def _park(self, save: ChangeEvent, decision: Decision, deadline: datetime) -> Verdict | None:
        """Manual policy: accept the save now, write nothing to the other side, park the conflict
        with both versions (the other side's as it holds it now, else as its pending change said)."""
        if not await self.queue.withdraw(save.event_id):
            return None  # leased meanwhile: its turn came, and the applier parks it there
        emap = self.applier.mappings.maps[save.entity]
        other_image, other_at = decision.rival.image, decision.rival.source_timestamp
        remaining = min(5.0, max((deadline - datetime.now(UTC)).total_seconds() / 2, 0.05))
        try:
            with deadline_scope(remaining, urgent=True):
                row = await self.applier.side(save.source.other).read(emap, save.company, save.key)
            if row is not None:
                other_image, other_at = row.image, row.modified_at or other_at
        except SyncError as exc:  # the parked versions are shown only; the resolve reads both again
            log.warning("parking %s: could not read %s (%s)", save.event_id, save.source.other, exc.message)
        reason = await park(self.state, emap, save, save.image, other_image, other_at)
        self.metrics.skipped(save.entity, direction(save.source), "conflict-parked")
        return Verdict(True, 200, f"{decision.reason}; {reason}")

    async def _apply_now(self, save: ChangeEvent, deadline: datetime) -> tuple[Verdict, bool]:
        """Apply the winning save to the other side within the sync budget; on a failure refuse it
        (the originator rolls back and the pending change of the other side lands), taking back what
        an attempt that timed out may have written. Returns (the answer, whether nothing is left to
        take back)."""
        attempt = 0
        while True:
            remaining = max((deadline - datetime.now(UTC)).total_seconds(), 0.05)
            try:
                with deadline_scope(remaining, urgent=True):
                    async with asyncio.timeout(remaining + 0.5):
                        applied = await self.applier.apply(save)
            except RetryableError as exc:
                attempt += 1
                delay = backoff_delay(self._wait, attempt, exc.retry_after)
                if (deadline - datetime.now(UTC)).total_seconds() > delay:
                    await asyncio.sleep(delay)
                    continue
                message = f"{SYSTEM_NAMES[save.source.other]} unavailable: {exc.message}"
                return await self._gave_up(save, message)
            except SyncError as exc:
                # Refused by the other side: nothing was written, the undo entry is not needed.
                conflict = exc.code == "conflict"
                status = 409 if conflict else 400 if (exc.status or 400) < 500 else 502
                message = f"{SYSTEM_NAMES[save.source.other]} rejected the change: {exc.message}"
                await self.recovery.settle(save)
                kind = FailureKind.CONFLICT if conflict else FailureKind.REJECTED
                return await self._refused(save, status, kind, message), True
            except TimeoutError:
                return await self._gave_up(save, "not finished within the sync budget")
            latency = (datetime.now(UTC) - save.received_at).total_seconds()
            self.metrics.applied(save.entity, direction(save.source), latency)
            return Verdict(True, 200, applied.reason or applied.result.value), True

    async def _gave_up(self, save: ChangeEvent, message: str) -> tuple[Verdict, bool]:
        """Budget spent: an attempt that timed out may have written, so take it back now, or leave
        that to the queued copy's turn when the other side is still unreachable."""
        try:
            await self.recovery.revert_if_applied(save)
            settled = True
        except SyncError as exc:
            log.warning("revert of %s pending (left queued): %s", save.event_id, exc.message)
            settled = False
        return await self._refused(save, 503, FailureKind.RETRY_EXHAUSTED, message), settled

    async def _refused(self, save: ChangeEvent, status: int, kind: FailureKind, message: str) -> Verdict:
        self.metrics.failed(save.entity, direction(save.source), kind, message)
        await self.state.add_failure(_failure(save, kind, None, message))
        return Verdict(False, status, message)

    async def _record(self, *, loser: ChangeEvent, winner: ChangeEvent, reason: str) -> None:
        """A conflict resolved by policy, for admins to see (it does not count as a malfunction)."""
        note = f"lost to {SYSTEM_NAMES[winner.source]}'s change {winner.event_id}"
        await self.state.add_failure(_failure(loser, FailureKind.CONFLICT, note, reason, compensated=True))


def _failure(
    event: ChangeEvent,
    kind: FailureKind,
    source_message: str | None,
    target_message: str | None,
    *,
    compensated: bool = False,
) -> Failure:
    return Failure(
        entity=event.entity,
        company=event.company,
        key=event.key,
        direction=direction(event.source),
        operation=event.operation.value,
        event_id=event.event_id,
        source_message=source_message,
        target_message=target_message,
        kind=kind,
        correlation_id=event.correlation_id,
        occurred_at=datetime.now(UTC),
        compensated=compensated,
        details={"event": event.model_dump(mode="json")},
    )
