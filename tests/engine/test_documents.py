"""The document applier over a fake document side (no network): one change set per document with
the header first, one way, its company only, a deleted document never written again, a posted
target refused before anything is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.core.docmap import DocumentMap
from bridge.core.errors import RejectedError
from bridge.core.events import ChangeEvent, Operation, SyncMode, System
from bridge.core.mapping import load_mappings
from bridge.engine.documents import DocumentApplier
from bridge.engine.sideports import DocWrite
from bridge.state.memory import MemoryState

MAPS = load_mappings(Path(__file__).resolve().parents[2] / "mappings")
WO_ID, LINE_ID, ACCOUNT, ITEM = (f"00000000-0000-0000-0000-00000000000{n}" for n in range(1, 5))


class FakeSide:
    """Dataverse rows by table, F&O rows by key; every change set kept."""

    def __init__(self) -> None:
        self.cds: dict[str, list[dict[str, Any]]] = {
            "msdyn_workorders": [
                {
                    "msdyn_workorderid": WO_ID,
                    "msdyn_name": "WO-1",
                    "msdyn_systemstatus": 690970001,
                    "msdynce_hasexternallymaintainedproductsonly": True,
                    "_msdyn_serviceaccount_value": ACCOUNT,
                }
            ],
            "msdyn_workorderproducts": [
                {
                    "msdyn_workorderproductid": LINE_ID,
                    "_msdyn_workorder_value": WO_ID,
                    "_msdyn_product_value": ITEM,
                    "msdyn_lineorder": 1,
                    "msdyn_linestatus": 690970000,
                    "msdyn_allocated": True,
                    "msdyn_estimatequantity": 5,
                    "msdynce_orderhasexternalmaintainedproductsonly": True,
                }
            ],
            "msdyn_workorderservices": [],
            "accounts": [{"accountid": ACCOUNT, "accountnumber": "US-001"}],
            "products": [{"productid": ITEM, "productnumber": "P-1"}],
        }
        self.scm: dict[str, dict[str, Any]] = {}
        self.changesets: list[list[DocWrite]] = []

    async def get(self, system: System, entity_set: str, keys: dict[str, Any]) -> dict[str, Any] | None:
        if system is System.SCM:
            return self.scm.get(entity_set)
        (column, value) = next(iter(keys.items()))
        return next((r for r in self.cds.get(entity_set, []) if r.get(column) == value), None)

    async def find(self, system: System, entity_set: str, equals: dict[str, Any]) -> list[dict[str, Any]]:
        return [r for r in self.cds.get(entity_set, []) if all(r.get(k) == v for k, v in equals.items())]

    async def key_of(self, entity_set: str, record_id: str, key_field: str) -> str | None:
        id_field = {"accounts": "accountid", "products": "productid"}[entity_set]
        row = next((r for r in self.cds.get(entity_set, []) if r.get(id_field) == record_id), None)
        return None if row is None else str(row[key_field])

    async def changeset(self, system: System, writes: list[DocWrite]) -> None:
        self.changesets.append(writes)


def event(record_id: str = WO_ID, **extra: Any) -> ChangeEvent:
    values: dict[str, Any] = {
        "event_id": f"cds:{len(str(extra))}:{record_id}",
        "source": System.CDS,
        "entity": "work_order",
        "company": "USMF",
        "key": WO_ID,
        "operation": Operation.UPDATE,
        "mode": SyncMode.ASYNC,
        "record_id": record_id,
        **extra,
    }
    return ChangeEvent(**values)


def work_order() -> DocumentMap:
    found = MAPS.get("work_order")
    assert isinstance(found, DocumentMap)
    return found


async def test_the_first_sync_is_one_change_set_header_first_and_a_repeat_writes_nothing() -> None:
    side, state = FakeSide(), MemoryState()
    applier = DocumentApplier(state=state, side=side)
    done = await applier.apply(event(), work_order())
    assert done.applied
    [writes] = side.changesets
    assert [(w.method, w.entity_set) for w in writes] == [
        ("POST", "CDSSalesOrderHeaders"),
        ("POST", "CDSSalesOrderLinesV2"),
    ]
    assert writes[1].body is not None and writes[1].body["OrderedSalesQuantity"] == 5
    again = await applier.apply(event(LINE_ID, event_id="cds:again"), work_order())
    assert not again.applied and again.reason == "no change since last sync"
    assert len(side.changesets) == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"source": System.SCM}, "one-way document map"),
        ({"company": "DEMF"}, "the map syncs USMF only"),
    ],
)
async def test_other_sides_and_companies_are_skipped(change: dict[str, Any], reason: str) -> None:
    side = FakeSide()
    done = await DocumentApplier(state=MemoryState(), side=side).apply(event(**change), work_order())
    assert not done.applied and reason in done.reason
    assert side.changesets == []


async def test_a_deleted_document_is_never_written_again() -> None:
    side, state = FakeSide(), MemoryState()
    applier = DocumentApplier(state=state, side=side)
    await applier.apply(event(), work_order())
    deleted = await applier.apply(event(event_id="cds:del", operation=Operation.DELETE), work_order())
    assert deleted.applied
    assert [(w.method, w.entity_set) for w in side.changesets[1]] == [
        ("DELETE", "CDSSalesOrderLinesV2"),
        ("DELETE", "CDSSalesOrderHeaders"),
    ]
    late = await applier.apply(event(LINE_ID, event_id="cds:late", operation=Operation.DELETE), work_order())
    assert not late.applied and late.reason == "the document was deleted"
    assert len(side.changesets) == 2


async def test_a_posted_target_is_refused_before_anything_is_sent() -> None:
    found = MAPS.get("agreement_invoice")
    assert isinstance(found, DocumentMap)
    side, state = FakeSide(), MemoryState()
    side.cds["invoices"] = [
        {
            "invoiceid": WO_ID,
            "invoicenumber": "INV-1",
            "name": "March",
            "_customerid_value": ACCOUNT,
            "msdyn_invoicedate": "2026-03-01",
            "msdynce_haslineswithagreementorigin": True,
        }
    ]
    side.cds["invoicedetails"] = []
    applier = DocumentApplier(state=state, side=side)
    inv = event(entity="agreement_invoice")
    assert (await applier.apply(inv, found)).applied
    side.cds["invoices"][0]["name"] = "March, corrected"
    side.scm["CDSFreeTextInvoiceHeaders"] = {"ExternalInvoiceId": "INV-1", "IsPosted": "Yes"}
    with pytest.raises(RejectedError, match="posted"):
        await applier.apply(event(entity="agreement_invoice", event_id="cds:2"), found)
    assert len(side.changesets) == 1


async def test_a_save_that_changes_no_column_the_document_reads_is_skipped_unread() -> None:
    side, state = FakeSide(), MemoryState()
    applier = DocumentApplier(state=state, side=side)
    await applier.apply(event(), work_order())
    side.cds["msdyn_workorders"] = []  # would read as "gone": proves nothing is read
    copy = event(LINE_ID, event_id="cds:copy", changed={"msdynce_headersystemstatus": 690970002})
    done = await applier.apply(copy, work_order())
    assert not done.applied and done.reason == "no mapped field changed"
    used = event(LINE_ID, event_id="cds:qty", changed={"msdyn_estimatequantity": 6})
    assert (await applier.apply(used, work_order())).reason == "the header is gone at the source"
