"""The SyncStatePort contract (issue 21: initial sync runs, their checkpoints and per-record errors):
every state backend ``bridge.state.factory`` knows runs these, built through its factory, and a store
opened again on the same storage sees what the last one wrote (a killed run resumes from it)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bridge.state.base import (
    SyncCheckpoint,
    SyncRecordError,
    SyncRun,
    SyncRunStatus,
    SyncStatePort,
    sync_store,
)
from tests.contract.test_state_contract import StateFactory

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
RUN = SyncRun(maps=("customer_asset_category", "customer_asset"), master="scm", companies=("usmf",))


def error(key: str, *, run_id: int = 1, company: str = "USMF", message: str = "refused") -> SyncRecordError:
    return SyncRecordError(
        run_id=run_id,
        entity="customer_asset",
        company=company,
        key=key,
        target="cds",
        operation="create",
        target_message=message,
        source_message="F&O: Pump 3",
        payload={"msdyn_name": "Pump 3", "msdyn_acquisitioncost": 12.5},
        fields=("msdyn_name", "msdyn_acquisitioncost"),
        status=400,
        code="0x80040203",
    )


@pytest.fixture
async def store(make_state: StateFactory) -> SyncStatePort:
    return sync_store(await make_state("main"))


async def test_a_run_is_stored_and_finished(store: SyncStatePort) -> None:
    first = await store.start_sync_run(RUN)
    second = await store.start_sync_run(replace(RUN, dry_run=True))
    assert second > first
    run = await store.get_sync_run(first)
    assert run is not None and run.started_at is not None
    assert replace(run, id=None, started_at=None) == replace(RUN, companies=("USMF",))
    await store.finish_sync_run(first, status=SyncRunStatus.DONE, message="12 written", at=T0)
    done = await store.get_sync_run(first)
    assert done is not None and (done.status, done.message, done.finished_at) == (
        SyncRunStatus.DONE,
        "12 written",
        T0,
    )
    assert [r.id for r in await store.sync_runs()] == [second, first]
    assert await store.get_sync_run(999) is None


async def test_checkpoints_replace_per_map_company_and_pass(store: SyncStatePort) -> None:
    rid = await store.start_sync_run(RUN)
    counts = {"cds": {"read": 10, "written": 3, "unchanged": 7, "failed": 0}, "scm": {"read": 9}}
    await store.put_sync_checkpoints(
        [
            SyncCheckpoint(rid, "customer_asset", "usmf", 1, "A-10", counts=counts),
            SyncCheckpoint(rid, "customer_asset", "USMF", 2, None),
            SyncCheckpoint(rid, "customer_asset_category", "USMF", 1, None, done=True),
        ]
    )
    await store.put_sync_checkpoints(
        [SyncCheckpoint(rid, "customer_asset", "USMF", 1, "A-20", counts=counts)]
    )
    got = await store.sync_checkpoints(rid)
    assert [(c.entity, c.company, c.pass_no, c.after_key, c.done) for c in got] == [
        ("customer_asset", "USMF", 1, "A-20", False),
        ("customer_asset", "USMF", 2, None, False),
        ("customer_asset_category", "USMF", 1, None, True),
    ]
    assert got[0].counts == counts and got[0].updated_at is not None
    assert await store.sync_checkpoints(rid + 1) == []


async def test_errors_are_listed_newest_first_paged_and_filtered(store: SyncStatePort) -> None:
    await store.add_sync_errors(
        [error(f"A-{n}") for n in range(5)] + [error("B-1", company="demf", run_id=2)]
    )
    listed = await store.sync_errors(limit=3)
    assert [e.key for e in listed] == ["B-1", "A-4", "A-3"]
    page2 = await store.sync_errors(offset=3, limit=3)
    assert [e.key for e in page2] == ["A-2", "A-1", "A-0"]
    one = page2[0]
    assert (one.target_message, one.source_message, one.payload, one.fields, one.status, one.code) == (
        "refused",
        "F&O: Pump 3",
        {"msdyn_name": "Pump 3", "msdyn_acquisitioncost": 12.5},
        ("msdyn_name", "msdyn_acquisitioncost"),
        400,
        "0x80040203",
    )
    assert one.occurred_at is not None and one.resolved_at is None and one.id is not None
    assert await store.count_sync_errors() == 6
    assert await store.count_sync_errors(company="DEMF") == 1
    assert await store.count_sync_errors(run_id=1, entity="customer_asset") == 5
    assert await store.count_sync_errors(entity="warehouse") == 0


async def test_a_newer_error_or_a_success_resolves_the_record(store: SyncStatePort) -> None:
    await store.add_sync_errors([error("A-1"), error("A-2")])
    await store.add_sync_errors([error("A-1", run_id=2, message="still refused")])
    open_errors = await store.sync_errors(open_only=True)
    assert [(e.key, e.target_message) for e in open_errors] == [("A-1", "still refused"), ("A-2", "refused")]
    assert await store.open_sync_error_keys("customer_asset", "usmf") == ["A-1", "A-2"]
    assert await store.resolve_sync_errors("customer_asset", "usmf", ["A-2", "none"], at=T0) == 1
    assert await store.open_sync_error_keys("customer_asset", "USMF") == ["A-1"]
    assert await store.count_sync_errors(open_only=True) == 1
    assert await store.count_sync_errors() == 3  # kept, resolved, for the record


async def test_a_store_opened_again_resumes_where_the_last_one_stopped(make_state: StateFactory) -> None:
    opened = await make_state("again")
    first = sync_store(opened)
    rid = await first.start_sync_run(RUN)
    await first.put_sync_checkpoints([SyncCheckpoint(rid, "customer_asset", "USMF", 1, "A-7")])
    await first.add_sync_errors([error("A-3", run_id=rid)])
    await opened.close()
    again = sync_store(await make_state("again"))
    run = await again.get_sync_run(rid)
    assert run is not None and run.status is SyncRunStatus.RUNNING
    assert [c.after_key for c in await again.sync_checkpoints(rid)] == ["A-7"]
    assert await again.open_sync_error_keys("customer_asset", "USMF") == ["A-3"]


async def test_a_windows_ledger_entries_go_in_together(make_state: StateFactory) -> None:
    from bridge.core.ledger import LedgerEntry

    opened = await make_state("ledger")
    entries = [
        LedgerEntry(
            record_key=f"ship_via|USMF|M{n}",
            entity="ship_via",
            company="USMF",
            key=f"M{n}",
            cds_id=None,
            cds_image={"msdyn_description": f"d{n}"},
            scm_image={"ModeDescription": f"d{n}"},
            cds_written_at=T0,
            scm_written_at=T0,
            last_event_id="initial-sync:1",
            scm_etag=f'W/"{n}"',
        )
        for n in range(3)
    ]
    await sync_store(opened).put_ledger_entries(entries)
    await sync_store(opened).put_ledger_entries([])
    got = await opened.get_ledger("ship_via|USMF|M2")
    assert got is not None and got.scm_image == {"ModeDescription": "d2"} and got.scm_etag == 'W/"2"'
    assert got.cds_written_at == T0 and got.updated_at is not None
    await sync_store(opened).put_ledger_entries([replace(entries[2], cds_image={"msdyn_description": "new"})])
    again = await opened.get_ledger("ship_via|USMF|M2")
    assert again is not None and again.cds_image == {"msdyn_description": "new"}
