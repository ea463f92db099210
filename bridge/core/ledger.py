"""The ledger's value type: what the bridge last synced for one record (pure data, no I/O).

It lives in the core because the echo and conflict rules (``bridge.core.rules``) decide on it; the
state port (``bridge.state.base``) stores and returns it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    record_key: str  # bridge.core.events.record_key(entity, company, key)
    entity: str
    company: str
    key: str
    cds_id: str | None  # Dataverse row GUID
    cds_image: dict[str, Any]  # mapped fields as last synced, Dataverse names/representation
    scm_image: dict[str, Any]  # mapped fields as last synced, F&O names/representation
    # When the bridge last wrote to each side (taken just before the write was sent). A write made with
    # a matching If-Match means every earlier change there was synced or overwritten, so a notification
    # of that side time-stamped before this is superseded (e.g. the loser of a conflict, arriving late).
    cds_written_at: datetime | None = None
    scm_written_at: datetime | None = None
    last_event_id: str | None = None
    last_source_timestamp: datetime | None = None  # of the newest change applied, either side
    deleted: bool = False  # tombstone: the record was deleted on both sides
    updated_at: datetime | None = None
    # Each side's ETag as of the last sync, when known: a write with If-Match on it needs no read
    # first, and a 412 says the record changed there since (then the conflict rules look).
    cds_etag: str | None = None
    scm_etag: str | None = None
