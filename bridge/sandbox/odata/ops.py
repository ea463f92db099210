"""What both OData engines share: one operation's request/response (HTTP or inside ``$batch``), the
call context, the write log, and the transaction runner that calls ``WriteHooks``.

Write transactions are serialised by one ``asyncio.Lock`` held across ``before_commit`` awaits (a
synchronous webhook runs inside the transaction). Reads never take that lock.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from bridge.sandbox.contracts import NoHooks, Principal, RecordChange, WriteHooks
from bridge.sandbox.odata.query import parse_prefer
from bridge.sandbox.store import Store

T = TypeVar("T")
log = logging.getLogger(__name__)
JSON_TYPE = "application/json; odata.metadata=minimal"


@dataclass
class OpRequest:
    method: str
    path: str  # raw (URL-encoded) path relative to the service root, e.g. "Warehouses(dataAreaId='usmf',...)"
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-cased names
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class OpResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> OpResponse:
        h = {"Content-Type": JSON_TYPE, "OData-Version": "4.0", **(headers or {})}
        return cls(status, h, json.dumps(payload, separators=(",", ":")).encode())


@dataclass
class CallContext:
    principal: Principal
    correlation_id: str  # one per HTTP request; a whole $batch shares it
    base_url: str  # service root with trailing slash, e.g. "https://127.0.0.1:8082/api/data/v9.2/"
    prefer: dict[str, str | None] = field(default_factory=dict)
    content_ids: dict[str, str] = field(default_factory=dict)  # $batch change set: Content-ID -> entity URL

    @classmethod
    def for_request(
        cls, principal: Principal, correlation_id: str, base_url: str, headers: Mapping[str, str]
    ) -> CallContext:
        return cls(principal, correlation_id, base_url, parse_prefer(headers.get("prefer")))


@dataclass(frozen=True, slots=True)
class WriteRecord:
    """One committed write, for tests and the admin API (which client changed what, when)."""

    entity_set: str
    message: str  # "Create" / "Update" / "Delete"
    record_id: str
    client_id: str
    at: datetime


@dataclass
class Unit:
    """The changes of one transaction: a single operation or a whole change set."""

    changes: list[RecordChange] = field(default_factory=list)
    writes: list[WriteRecord] = field(default_factory=list)


class Transactor:
    def __init__(self, store: Store, hooks: WriteHooks | None = None) -> None:
        self.store = store
        self.hooks: WriteHooks = hooks or NoHooks()
        self.lock = asyncio.Lock()
        self.write_log: list[WriteRecord] = []

    async def atomic(self, body: Callable[[Unit], Awaitable[T]]) -> T:
        """Run ``body`` in one transaction: any exception rolls everything back and propagates.
        After COMMIT, ``after_commit`` runs for each change in order."""
        unit = Unit()
        async with self.lock:
            self.store.begin()
            try:
                result = await body(unit)
            except BaseException:
                self.store.rollback()
                raise
            self.store.commit()
        self.write_log.extend(unit.writes)
        for change in unit.changes:
            try:
                await self.hooks.after_commit(change)
            except Exception:  # the write is committed; a notifier bug must not turn it into a 500
                log.exception("after_commit hook failed for %s %s", change.message, change.record_id)
        return result
