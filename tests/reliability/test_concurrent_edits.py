"""Concurrent edits of the same records on both systems: both converge, and there is no ping-pong
(the bridge writes at most once per human change, and nothing is written once they agree)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from bridge.core.entitymap import ConflictPolicy
from bridge.sandbox.contracts import RecordChange
from tests.reliability.conftest import Rig, forms
from tests.reliability.helpers import CDS_SET, converge, mapped_dump, stream


def _bridge_writes(rig: Rig) -> int:
    client = rig.bridge_client
    return sum(1 for c in rig.cds_log.commits + rig.scm_log.commits if c.client_id == client)


@forms(short=(10, 150), long=(100, 3000))
async def test_both_sides_editing_the_same_records_converge_without_ping_pong(
    rig: Rig, size: tuple[int, int]
) -> None:
    records, updates = size
    # Conflicts are resolved by policy, by design, under this storm: they are recorded for admins but
    # do not trip the default alert rule (10 failures in 15 min), so the map keeps running.
    keys = [f"C{n:03d}" for n in range(records)]
    await stream(keys, 0, rig.person.scm_create, rig.person.scm_update, tag="base")
    await converge(rig.sandbox)
    before = _bridge_writes(rig)
    for key in keys:
        rig.person.cds_id(key)

    await asyncio.gather(
        stream(keys, updates, None, rig.person.cds_update, tag="cds", start=0, lanes=4),
        stream(keys, updates, None, rig.person.scm_update, tag="scm", start=1, lanes=4),
    )
    agreed = await converge(rig.sandbox, timeout=15)
    assert set(agreed) == set(keys)
    written = _bridge_writes(rig) - before
    assert 0 < written <= 2 * updates  # at most one write per human change
    await asyncio.sleep(1.0)  # a ping-pong would keep writing now
    assert _bridge_writes(rig) - before == written
    assert await converge(rig.sandbox, timeout=1) == agreed
    token = rig.bridge.settings.admin_token.get_secret_value()
    async with rig.http.get(
        f"{rig.bridge.url}/api/maps/ship_via", headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        assert (await resp.json())["state"] == "running"


# ---------------------------------------------------------------- synchronous mode
#
# A Dataverse synchronous step runs inside the save's transaction: the row stays locked until the
# webhook answers (the emulator holds its write lock across the call, docs/sandbox-rules.md). An
# F&O -> Dataverse write of the same record that is queued or in flight when the save arrives would
# deadlock with a save queued behind it. The timeline below records, in the one event loop's order,
# when each save's webhook step starts and ends and when each bridge write into Dataverse starts and
# ends, so the test can say from the order alone that no save waited for such a write.

ROUNDS = 50
SAVE_BACKSTOP_S = 15.0  # a generous bound only: a save that hangs fails here instead of never


@dataclass
class Timeline:
    bridge_client: str
    events: list[tuple[str, str, object]] = field(default_factory=list)  # (what, record id, detail)

    def install(self, sandbox: Any) -> None:
        service = sandbox.dataverse
        inner_hooks, http = service.hooks, service.http
        dispatch = http.dispatch
        timeline = self

        class Hooks:
            async def before_commit(self, change: RecordChange) -> None:
                mine = change.entity_set == CDS_SET and change.principal.client_id != timeline.bridge_client
                if mine:
                    timeline.events.append(("save-call", change.record_id, None))
                try:
                    await inner_hooks.before_commit(change)
                except Exception as exc:
                    if mine:
                        timeline.events.append(("save-answer", change.record_id, f"refused: {exc}"))
                    raise
                if mine:
                    timeline.events.append(("save-answer", change.record_id, "accepted"))

            async def after_commit(self, change: RecordChange) -> None:
                await inner_hooks.after_commit(change)

        async def traced(op: Any, ctx: Any, unit: Any) -> Any:
            record = op.path.split("(", 1)[1].rstrip(")") if op.path.startswith(CDS_SET + "(") else ""
            write = op.method in ("PATCH", "POST", "DELETE") and ctx.principal.client_id == self.bridge_client
            if write and record:
                self.events.append(("write-start", record, None))
            resp = await dispatch(op, ctx, unit)
            if write and record:
                self.events.append(("write-end", record, bytes(op.body).decode(errors="replace")))
            return resp

        service.hooks = Hooks()
        http.dispatch = traced

    def rounds_of(self, record: str) -> list[list[tuple[str, object]]]:
        """Per save of ``record``: the events of that record from its call to its answer and after,
        up to the next save's call."""
        out: list[list[tuple[str, object]]] = []
        for what, rid, detail in self.events:
            if rid != record:
                continue
            if what == "save-call":
                out.append([])
            if out:
                out[-1].append((what, detail))
        return out


async def _settled(rig: Rig, key: str) -> tuple[str | None, str | None]:
    """(Dataverse, F&O) value of ``key`` once both agree and nothing is on its way (or the backstop)."""
    deadline = asyncio.get_running_loop().time() + SAVE_BACKSTOP_S
    while True:
        await rig.sandbox.notifier.drain()
        both = mapped_dump(rig.sandbox, "cds").get(key), mapped_dump(rig.sandbox, "scm").get(key)
        idle = await rig.bridge.queue.depth() == 0
        if (both[0] == both[1] and idle) or asyncio.get_running_loop().time() > deadline:
            return both
        await asyncio.sleep(0.02)


async def _setup(rig: Rig) -> tuple[list[str], dict[str, str], Timeline]:
    keys = [f"S{n:02d}" for n in range(5)]
    await stream(keys, 0, rig.person.scm_create, rig.person.scm_update, tag="base")
    await converge(rig.sandbox)
    ids = {key: rig.person.cds_id(key) for key in keys}
    timeline = Timeline(rig.bridge_client)
    timeline.install(rig.sandbox)
    return keys, ids, timeline


async def _round(rig: Rig, n: int, key: str) -> int:
    """F&O first, then Dataverse 0-45 ms later: the Dataverse edit is the later one, and its save
    meets the F&O change queued, in flight, or just applied. Returns the save's status."""
    assert await rig.person.scm_update(key, f"scm-{n}") == 204
    await asyncio.sleep((n % 10) * 0.005)
    return await asyncio.wait_for(rig.person.cds_update(key, f"cds-{n}"), SAVE_BACKSTOP_S)


def _answered_at_once(rig: Rig, timeline: Timeline, ids: dict[str, str], status: int | None = None) -> int:
    """Every save's step got its answer at the first attempt (a save that waited would have been
    answered 504 when the bridge gave up, and Dataverse would have called again), and a bridge write
    into the record that started during the step (blocked by the save's lock) ended only after the
    answer. Returns how many such blocked writes there were."""
    jobs = rig.sandbox.notifier.dataverse.jobs
    saves = [j for j in jobs if j.mode == "sync" and j.initiating_client_id != rig.bridge_client]
    assert len(saves) == ROUNDS
    assert all(len(j.attempts) == 1 for j in saves), [[a.status for a in j.attempts] for j in saves]
    if status is not None:
        assert [j.attempts[0].status for j in saves] == [status] * ROUNDS
    blocked = 0
    for record in ids.values():
        for events in timeline.rounds_of(record):
            whats = [what for what, _ in events]
            assert whats.count("save-answer") == 1, events
            answer = whats.index("save-answer")
            # Nothing is written into the row while its save's step runs (the transaction's lock) ...
            assert "write-end" not in whats[:answer], events
            # ... so a bridge write that started meanwhile was blocked by the save, and the save was
            # answered without waiting for it: the write ends after the answer.
            started = whats[:answer].count("write-start")
            assert whats[answer:].count("write-end") >= started, events
            blocked += started
    return blocked


@pytest.mark.parametrize("webhook_mode", ["sync"])
async def test_sync_saves_under_concurrent_edits_never_wait_on_their_own_transaction(rig: Rig) -> None:
    keys, ids, timeline = await _setup(rig)
    later: dict[str, str] = {}
    statuses: list[int] = []
    for n in range(ROUNDS):
        key = keys[n % len(keys)]
        later[key] = f"cds-{n}"
        statuses.append(await _round(rig, n, key))
        # Newer wins: the later (Dataverse) edit is what both sides hold once the round settles (an
        # F&O write that overwrote it after the save would leave the two sides apart).
        assert statuses[-1] == 204, f"round {n}: the later edit was refused"
        assert await _settled(rig, key) == (later[key], later[key]), f"round {n}"
    agreed = await converge(rig.sandbox, timeout=15)
    assert {k: agreed[k] for k in keys} == later
    # No save waited for a write into its own transaction, and the scenario happened: some saves
    # met a bridge write into their record on its way in.
    blocked = _answered_at_once(rig, timeline, ids, status=200)
    assert blocked > 0, "no round had an F&O -> Dataverse write meet a synchronous save"


@pytest.mark.parametrize("webhook_mode", ["sync"])
async def test_under_scm_wins_a_save_meeting_a_pending_fno_change_is_refused_at_once(rig: Rig) -> None:
    # The running bridge's map, switched to scm-wins (the engine and the gate read the policy there).
    maps = rig.bridge.applier.mappings.maps
    maps["ship_via"] = maps["ship_via"].model_copy(update={"conflict_policy": ConflictPolicy.SCM_WINS})
    keys, ids, timeline = await _setup(rig)
    refused = 0
    for n in range(ROUNDS):
        key = keys[n % len(keys)]
        status = await _round(rig, n, key)
        # Refused (rolled back): F&O's change is what both sides hold. Accepted: F&O's change had been
        # applied before the save came, so there was nothing to conflict with.
        assert status in (204, 400), f"round {n}: {status}"
        refused += status == 400
        winner = f"scm-{n}" if status == 400 else f"cds-{n}"
        assert await _settled(rig, key) == (winner, winner), f"round {n}"
    _answered_at_once(rig, timeline, ids)
    assert refused > 0, "no save met a pending F&O change"
    token = rig.bridge.settings.admin_token.get_secret_value()
    async with rig.http.get(
        f"{rig.bridge.url}/api/failures", headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        body = await resp.json()
    conflicts = [f for f in body["items"] if f["kind"] == "conflict" and f["direction"] == "cds->scm"]
    assert len(conflicts) >= refused
    assert all(
        f["target_message"].startswith("conflict: Finance and Operations changed this record at")
        and f["target_message"].endswith("and the map's policy is scm-wins")
        for f in conflicts
    ), conflicts
