"""Pure helpers over ledger entries and rows: ETags, ids, and the undo journal's JSON form."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bridge.core.events import ChangeEvent, System
from bridge.core.ledger import LedgerEntry
from bridge.engine.sideports import Row


def etag_of(ledger: LedgerEntry | None, side: System) -> str | None:
    if ledger is None:
        return None
    return ledger.cds_etag if side is System.CDS else ledger.scm_etag


def source_etag(event: ChangeEvent, image: dict[str, Any]) -> str | None:
    """The source row's ETag after this change, when the image tells it (Dataverse: W/"versionnumber")."""
    etag = image.get("@odata.etag")
    if isinstance(etag, str):
        return etag
    version = image.get("versionnumber")
    return f'W/"{version}"' if event.source is System.CDS and version is not None else None


def target_cds_id(event: ChangeEvent, ledger: LedgerEntry | None) -> str | None:
    """The Dataverse row id when Dataverse is the target and we know it."""
    return ledger.cds_id if event.source is System.SCM and ledger is not None else None


def cds_id_for_create(event: ChangeEvent, ledger: LedgerEntry | None) -> str | None:
    # Re-creating a record we knew keeps its Dataverse id, so references to it stay valid.
    return ledger.cds_id if event.source is System.SCM and ledger is not None and ledger.deleted else None


def row_to_json(row: Row) -> dict[str, Any]:
    return {
        "image": row.image,
        "record_id": row.record_id,
        "etag": row.etag,
        "modified_at": row.modified_at.isoformat() if row.modified_at else None,
    }


def row_from_json(data: dict[str, Any]) -> Row:
    modified = data.get("modified_at")
    return Row(
        image=data["image"],
        record_id=data.get("record_id"),
        etag=data.get("etag"),
        modified_at=datetime.fromisoformat(modified) if modified else None,
    )


LEDGER_TIMES = ("cds_written_at", "scm_written_at", "last_source_timestamp", "updated_at")


def last_written(ledger: LedgerEntry, side: System) -> datetime | None:
    return ledger.cds_written_at if side is System.CDS else ledger.scm_written_at


def ledger_to_json(entry: LedgerEntry) -> dict[str, Any]:
    values = {name: getattr(entry, name) for name in LedgerEntry.__slots__}
    for name in LEDGER_TIMES:
        values[name] = values[name].isoformat() if values[name] else None
    return values


def ledger_from_json(data: dict[str, Any]) -> LedgerEntry:
    values = dict(data)
    for name in LEDGER_TIMES:
        values[name] = datetime.fromisoformat(values[name]) if values.get(name) else None
    return LedgerEntry(**values)


def replace_ledger(entry: LedgerEntry, **changes: Any) -> LedgerEntry:
    values = {name: getattr(entry, name) for name in LedgerEntry.__slots__}
    values.update(changes, updated_at=datetime.now(UTC))
    return LedgerEntry(**values)
