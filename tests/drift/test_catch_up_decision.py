"""Which rows the catch-up on start hands to the engine, and with what source time (bridge/catchup.py).

The systems' modified times have whole seconds (Dataverse ``modifiedon``, F&O ``ModifiedDateTime``);
the engine's ``is_stale`` compares event times with the ledger's ``last_source_timestamp`` (ms). These
tests drive ``CatchUp.run`` over fake clients and the real ledger rules: a row as last synced is not
submitted, a changed one is, at its own modified time, so neither an old image of the unchanged side
nor a live change of the same second is decided wrongly.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.catchup import CatchUp, catch_up_stamp
from bridge.core.events import ChangeEvent, Operation, SyncMode, System, record_key
from bridge.core.ledger import LedgerEntry
from bridge.core.mapping import MappingSet, load_mappings
from bridge.core.rules import is_stale, is_superseded
from bridge.demo import default_mappings_dir
from bridge.state.base import MapState, MapStatus

SECOND = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)  # a modified time: whole seconds
READ = SECOND + timedelta(seconds=5)  # when the catch-up read the rows
COMPANY_ID = "00000000-0000-0000-0000-0000000000aa"


def _ledger(**overrides: Any) -> LedgerEntry:
    entry = LedgerEntry(
        record_key=record_key("ship_via", "USMF", "Ship"),
        entity="ship_via",
        company="USMF",
        key="Ship",
        cds_id="11111111-1111-1111-1111-111111111111",
        cds_image={"msdyn_name": "Ship", "msdyn_description": "Sea"},
        scm_image={"ModeCode": "Ship", "ModeDescription": "Sea"},
        last_source_timestamp=SECOND - timedelta(minutes=5),
        updated_at=SECOND + timedelta(seconds=1),  # the entry written before the read (READ)
        cds_etag='W/"100"',
        scm_etag='W/"JzEsNTYzNzE0NDU3NjsxLDY4NzE5NDc2NzM2Jw=="',
    )
    return replace(entry, **overrides)


def _cds_row(etag: str, description: str = "Sea", modified: datetime = SECOND) -> dict[str, Any]:
    return {
        "@odata.etag": etag,
        "msdyn_shipviaid": "11111111-1111-1111-1111-111111111111",
        "msdyn_name": "Ship",
        "msdyn_description": description,
        "_msdyn_company_value": COMPANY_ID,
        "modifiedon": modified.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


class FakeDataverse:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    async def query(self, entity_set: str, **_: Any) -> list[dict[str, Any]]:
        return self.rows if entity_set == "msdyn_shipvias" else []

    async def company_code(self, company_id: str) -> str:
        assert company_id == COMPANY_ID
        return "USMF"


class FakeFno:
    async def query(self, entity_set: str, **_: Any) -> list[dict[str, Any]]:
        return []


class FakeState:
    def __init__(self, ledger: LedgerEntry | None) -> None:
        self.ledger = ledger

    async def get_map_state(self, name: str) -> MapState:
        return MapState(entity=name, status=MapStatus.RUNNING)

    async def get_ledger(self, key: str) -> LedgerEntry | None:
        return self.ledger if self.ledger and self.ledger.record_key == key else None


class FakeDrift:
    def __init__(self) -> None:
        self.marks: dict[tuple[str, str], datetime] = {}

    async def watermark(self, name: str, side: str) -> datetime | None:
        return SECOND - timedelta(minutes=1)  # every map marked before the downtime

    async def put_watermark(self, name: str, side: str, at: datetime) -> None:
        self.marks[(name, side)] = at


class Sink:
    def __init__(self) -> None:
        self.events: list[ChangeEvent] = []

    async def submit(self, event: ChangeEvent) -> Any:
        self.events.append(event)


@pytest.fixture(scope="module")
def mappings() -> MappingSet:
    return load_mappings(default_mappings_dir())


async def _run(
    mappings: MappingSet, rows: list[dict[str, Any]], ledger: LedgerEntry | None
) -> tuple[Any, list[ChangeEvent], FakeDrift]:
    sink, drift = Sink(), FakeDrift()
    catchup = CatchUp(
        mappings=mappings,
        cds=FakeDataverse(rows),  # type: ignore[arg-type]
        scm=FakeFno(),  # type: ignore[arg-type]
        sink=sink,
        state=FakeState(ledger),  # type: ignore[arg-type]
        drift=drift,  # type: ignore[arg-type]
        margin_s=300,
    )
    report = await catchup.run()
    return report, sink.events, drift


async def test_a_row_with_the_ledgers_etag_is_not_submitted_and_counted_unchanged(
    mappings: MappingSet,
) -> None:
    report, events, _ = await _run(mappings, [_cds_row('W/"100"')], _ledger())
    assert events == []
    assert report.submitted["ship_via"]["cds"] == 0
    assert report.unchanged["ship_via"]["cds"] == 1


async def test_a_changed_row_is_submitted_at_its_own_modified_time(mappings: MappingSet) -> None:
    report, events, _ = await _run(mappings, [_cds_row('W/"101"', "Sea freight")], _ledger())
    assert report.submitted["ship_via"]["cds"] == 1
    (event,) = events
    assert event.source is System.CDS and event.image is not None
    assert event.image["msdyn_description"] == "Sea freight"
    assert event.source_timestamp == SECOND  # not the end of its second


async def test_a_record_never_synced_is_submitted(mappings: MappingSet) -> None:
    report, events, _ = await _run(mappings, [_cds_row('W/"7"')], None)
    assert report.submitted["ship_via"]["cds"] == 1 and len(events) == 1


async def test_an_unchanged_sides_old_image_does_not_overwrite_the_other_sides_newer_change(
    mappings: MappingSet,
) -> None:
    # 12:00:00.200 a person saved on Dataverse (synced: the ledger has its ETag); 12:00:00.700 a person
    # saved on F&O, queued before a kill -9 and applied on restart just before the catch-up event.
    applied_fno = _ledger(last_source_timestamp=SECOND + timedelta(milliseconds=700))
    _, events, _ = await _run(mappings, [_cds_row('W/"100"')], applied_fno)
    assert events == []  # the old Dataverse image is not written back over F&O's newer value
    # Without an ETag to compare it is submitted (same second), at F&O's time: equal, not stale, and
    # the write of F&O's value to Dataverse (after the row was read) supersedes the old image.
    at = catch_up_stamp(System.CDS, {}, SECOND, replace(applied_fno, cds_etag=None), READ)
    assert at == applied_fno.last_source_timestamp
    written = replace(applied_fno, cds_written_at=SECOND + timedelta(milliseconds=750))
    assert is_superseded(_event_at(at), written)


async def test_a_live_change_after_the_read_is_not_made_stale_by_the_caught_up_row(
    mappings: MappingSet,
) -> None:
    _, events, _ = await _run(mappings, [_cds_row('W/"101"', "Sea freight")], _ledger())
    (caught,) = events
    # The engine applies the caught-up row: the ledger now holds its source time.
    after_catch_up = _ledger(last_source_timestamp=caught.source_timestamp, cds_etag='W/"101"')
    live = _event_at(SECOND + timedelta(milliseconds=400))  # saved after the read, same second
    assert not is_stale(live, after_catch_up)


def test_a_same_second_newer_applied_change_raises_the_time_to_equal_not_past() -> None:
    last = SECOND + timedelta(milliseconds=700)
    at = catch_up_stamp(System.CDS, _cds_row('W/"101"'), SECOND, _ledger(last_source_timestamp=last), READ)
    assert at == last  # equal is not stale: a genuine change of that second still applies
    earlier = _ledger(last_source_timestamp=SECOND - timedelta(milliseconds=300))
    assert catch_up_stamp(System.CDS, _cds_row('W/"101"'), SECOND, earlier, READ) == SECOND


def test_without_etags_a_row_modified_before_the_last_sync_of_its_side_is_not_submitted() -> None:
    no_etags = _ledger(cds_etag=None, cds_written_at=SECOND + timedelta(seconds=2, milliseconds=5))
    assert catch_up_stamp(System.CDS, _cds_row('W/"5"'), SECOND, no_etags, READ) is None
    # the same second as the last write: maybe a genuine change after it, so submitted
    same = _ledger(cds_etag=None, cds_written_at=SECOND + timedelta(milliseconds=5))
    assert catch_up_stamp(System.CDS, _cds_row('W/"5"'), SECOND, same, READ) == SECOND
    # an F&O row without @odata.etag is compared by time too
    fno = replace(no_etags, scm_written_at=no_etags.cds_written_at)
    assert catch_up_stamp(System.SCM, {}, SECOND, fno, READ) is None


async def test_document_maps_are_not_caught_up_and_the_report_says_so(mappings: MappingSet) -> None:
    report, _, drift = await _run(mappings, [], _ledger())
    documents = {"agreement_invoice", "product", "work_order"}
    assert documents <= set(report.skipped)
    assert not {name for name, _ in drift.marks} & documents
    assert ("ship_via", "cds") in drift.marks


def _event_at(at: datetime) -> ChangeEvent:
    return ChangeEvent(
        event_id=f"live:{at.isoformat()}",
        source=System.CDS,
        entity="ship_via",
        company="USMF",
        key="Ship",
        operation=Operation.UPDATE,
        mode=SyncMode.ASYNC,
        record_id="11111111-1111-1111-1111-111111111111",
        image=_cds_row('W/"102"'),
        source_timestamp=at,
    )


def test_a_change_applied_after_the_read_is_not_overtaken_by_the_row_as_read() -> None:
    # The rows are read, then a queued live change of the same second runs (its ledger entry written
    # after the read began), then the ledger is read: the row may be older than that change, so its
    # time is not raised to it and the engine finds it stale.
    read = SECOND + timedelta(milliseconds=300)
    newer = _ledger(
        scm_etag=None,
        last_source_timestamp=SECOND + timedelta(milliseconds=600),
        updated_at=SECOND + timedelta(milliseconds=650),
    )
    at = catch_up_stamp(System.SCM, {}, SECOND, newer, read)
    assert at == SECOND
    assert at is not None and is_stale(_event_at(at), newer)
    # the same entry written before the read: a genuine change of that second, raised to equal
    before = replace(newer, updated_at=SECOND + timedelta(milliseconds=250))
    assert catch_up_stamp(System.SCM, {}, SECOND, before, read) == newer.last_source_timestamp
