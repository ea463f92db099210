"""Bulk writes for sync runs: records written in ``$batch`` change sets, one outcome per record.

A change set commits or rolls back as a whole (powerapps-docs, developer/data-platform/webapi/
execute-batch-operations-using-web-api.md; F&O odata.md), and a failed one answers with the response
of the request that failed, under its ``Content-ID``. So a change set that fails for one record is
sent again without it, split in two (a second failure costs half the work, not all of it), until
every record has its own answer. Sets hold at most ``MAX_OPERATIONS`` (1,000: Dataverse's limit;
F&O's is 5,000). The batch is sent with ``Prefer: odata.continue-on-error``, so a failed change set
is an answer inside a 200, never a whole-request error to retry.

An update carries the ETag read as ``If-Match``: a row changed since the read answers 412 and is
reported ``changed_since`` (its own live change follows), as is a create that meets a row created
since (duplicate key).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from multidict import CIMultiDict

from bridge.core.compare import LookupNeed, WriteKind
from bridge.core.errors import RejectedError, RetryableError
from bridge.core.events import System
from bridge.core.mapping import EntityMap, MappingSet
from bridge.engine.syncports import BulkOutcome, BulkWrite, Page, WriteFigures
from bridge.systems.batch import BatchOperation
from bridge.systems.dataverse import DataverseClient
from bridge.systems.errors import classify
from bridge.systems.fno import FnoClient
from bridge.systems.lookups import prefetch
from bridge.systems.odata import id_from_entity_url, id_segment, key_segment
from bridge.systems.pages import cds_count, cds_pages, companies, scm_count, scm_pages
from bridge.systems.sides import CdsSide
from bridge.wire.batch import MAX_OPERATIONS, BatchRequest, BatchResponse, ChangeSet, write_requests
from bridge.wire.batch import parse_batch_response as read_answer

log = logging.getLogger(__name__)

ALL_4XX = tuple(range(400, 500))


def _changed_since(status: int, code: str | None, message: str) -> bool:
    duplicate = code in ("0x80040237", "duplicate") or "duplicate" in message.lower()
    return status == 412 or duplicate


class _BulkWriter:
    """Change sets of one system's client, with the split-and-resend rule above."""

    system: System

    def __init__(
        self, client: DataverseClient | FnoClient, *, batch_size: int = MAX_OPERATIONS, page_size: int = 5000
    ) -> None:
        self.client = client
        self.batch_size = max(1, min(batch_size, MAX_OPERATIONS))
        self.page_size = page_size
        self._figures = WriteFigures()

    @property
    def figures(self) -> WriteFigures:
        return self._figures

    def operation(self, emap: EntityMap, write: BulkWrite) -> BatchOperation:
        raise NotImplementedError

    async def write(self, emap: EntityMap, writes: Sequence[BulkWrite]) -> list[BulkOutcome]:
        outcomes: list[BulkOutcome | None] = [None] * len(writes)
        ops: dict[int, BatchOperation] = {}
        for i, write in enumerate(writes):
            try:
                ops[i] = self.operation(emap, write)
            except RejectedError as exc:  # cannot even be addressed (its company is missing there)
                outcomes[i] = BulkOutcome(ok=False, message=exc.message, status=exc.status, code=exc.code)
        ready = sorted(ops)
        size = self.batch_size
        pending = [(ready[i : i + size], False) for i in range(0, len(ready), size)]
        while pending:
            indexes, resent = pending.pop(0)
            if resent:
                self._figures.resent += len(indexes)
            failed_at, results = await self._send([ops[i] for i in indexes])
            if failed_at is None:
                for i, result in zip(indexes, results, strict=True):
                    outcomes[i] = result
                continue
            bad, failure = failed_at
            outcomes[indexes[bad]] = failure
            rest = indexes[:bad] + indexes[bad + 1 :]
            half = (len(rest) + 1) // 2
            pending[:0] = [(part, True) for part in (rest[:half], rest[half:]) if part]
        return [o if o is not None else BulkOutcome(ok=False, message="not answered") for o in outcomes]

    async def _send(
        self, ops: list[BatchOperation]
    ) -> tuple[tuple[int, BulkOutcome] | None, list[BulkOutcome]]:
        """One change set: (None, outcomes) when it committed; ((index, outcome), []) when the
        operation at ``index`` failed it (the rest rolled back)."""
        root = self.client.http.base_url.rstrip("/")
        requests = []
        for number, op in enumerate(ops, start=1):
            headers = {**op.headers, "Content-Type": "application/json; type=entry"}
            body = json.dumps(op.body, separators=(",", ":")).encode() if op.body is not None else b""
            requests.append(BatchRequest(op.method, f"{root}/{op.path}", headers, body, str(number)))
        content_type, body = write_requests([ChangeSet(requests)])
        self._figures.batches += 1
        self._figures.operations += len(ops)
        resp = await self.client.http.request(
            "POST",
            "$batch",
            raw_body=body,
            content_type=content_type,
            headers={"Prefer": "odata.continue-on-error"},
            accept=ALL_4XX,
        )
        parts = read_answer(resp.text, resp.headers.get("Content-Type", ""), lenient=True)
        flat: list[BatchResponse] = []
        for part in parts:
            flat.extend(part if isinstance(part, list) else [part])
        failed = next((p for p in flat if p.status >= 300), None)
        if failed is None and len(flat) == len(ops):
            return None, [self._ok(p) for p in flat]
        if failed is None:
            raise RejectedError(f"{self.system.value}: $batch answered {len(flat)} of {len(ops)} operations")
        index = _index_of(failed, len(ops))
        return (index, self._failure(failed)), []

    def _ok(self, part: BatchResponse) -> BulkOutcome:
        headers = CIMultiDict(part.headers)
        record_id = id_from_entity_url(headers.get("OData-EntityId"))
        etag = headers.get("ETag")
        if part.body and not etag:  # the header says it already: no need to parse the row
            try:
                body = json.loads(part.body)
            except ValueError:
                body = None
            if isinstance(body, dict):
                etag = etag or body.get("@odata.etag")
        return BulkOutcome(ok=True, record_id=record_id, etag=etag)

    def _failure(self, part: BatchResponse) -> BulkOutcome:
        text = part.body.decode("utf-8", "replace").strip()
        try:
            body: Any = json.loads(text) if text else None
        except ValueError:
            body = None
        error = classify(self.system.value, part.status, CIMultiDict(part.headers), body, text)
        return BulkOutcome(
            ok=False,
            changed_since=_changed_since(part.status, error.code, error.message),
            message=error.message,
            status=part.status,
            code=error.code,
            retryable=isinstance(error, RetryableError),
        )


def _index_of(part: BatchResponse, count: int) -> int:
    """The failed operation's position, from its Content-ID (the first when none was given back)."""
    try:
        index = int(part.content_id or "1") - 1
    except ValueError:
        index = 0
    return index if 0 <= index < count else 0


class CdsBulkSide(_BulkWriter):
    system = System.CDS

    def __init__(self, client: DataverseClient, company_ids: dict[str, str], **kw: Any) -> None:
        super().__init__(client, **kw)
        self.cds = client
        self._company_ids = company_ids  # code -> cdm_company id, filled by BulkSystems.companies

    def pages(self, emap: EntityMap, company: str, *, after: str | None = None) -> AsyncIterator[Page]:
        return cds_pages(self.cds, emap, company, after=after, page_size=self.page_size)

    async def count(self, emap: EntityMap, company: str) -> int | None:
        return await cds_count(self.cds, emap, company)

    def operation(self, emap: EntityMap, write: BulkWrite) -> BatchOperation:
        if write.kind is WriteKind.UPDATE:
            assert write.record_id is not None
            headers = {"If-Match": write.etag or "*"}
            return BatchOperation(
                "PATCH", emap.cds.entity_set + id_segment(write.record_id), write.payload, headers
            )
        company_id = self._company_ids.get(write.company.upper())
        if company_id is None:
            raise RejectedError(
                f"company {write.company} does not exist in Dataverse", system="cds", status=404
            )
        body = {
            **write.payload,
            emap.cds.key_field: write.key,
            f"{emap.cds.company_field}@odata.bind": f"/{emap.cds.company_entity_set}({company_id})",
        }
        return BatchOperation("POST", emap.cds.entity_set, body, {})


class ScmBulkSide(_BulkWriter):
    system = System.SCM

    def __init__(self, client: FnoClient, **kw: Any) -> None:
        super().__init__(client, **kw)
        self.scm = client

    def pages(self, emap: EntityMap, company: str, *, after: str | None = None) -> AsyncIterator[Page]:
        return scm_pages(self.scm, emap, company, after=after, page_size=self.page_size)

    async def count(self, emap: EntityMap, company: str) -> int | None:
        return await scm_count(self.scm, emap, company)

    def operation(self, emap: EntityMap, write: BulkWrite) -> BatchOperation:
        keys = {emap.scm.company_field: write.company.lower(), emap.scm.key_field: write.key}
        if write.kind is WriteKind.UPDATE:
            headers = {"If-Match": write.etag} if write.etag else {}
            path = emap.scm.entity_set + key_segment(keys) + "?cross-company=true"
            return BatchOperation("PATCH", path, write.payload, headers)
        return BatchOperation("POST", emap.scm.entity_set, {**write.payload, **keys}, {})


class BulkSystems:
    """``SyncSystems`` over the two clients. Lookups resolve through Dataverse (its caches: a
    created row is remembered, so what points at it resolves without a query)."""

    def __init__(
        self,
        cds: DataverseClient,
        scm: FnoClient,
        mappings: MappingSet,
        *,
        batch_size: int = MAX_OPERATIONS,
        page_size: int = 5000,
    ) -> None:
        self._company_ids: dict[str, str] = {}
        self._cds = CdsBulkSide(cds, self._company_ids, batch_size=batch_size, page_size=page_size)
        self._scm = ScmBulkSide(scm, batch_size=batch_size, page_size=page_size)
        self._lookups = CdsSide(cds, mappings)
        self.cds_client, self.scm_client = cds, scm

    @property
    def cds(self) -> CdsBulkSide:
        return self._cds

    @property
    def scm(self) -> ScmBulkSide:
        return self._scm

    async def companies(self) -> list[str]:
        codes = await companies(self.cds_client, self.scm_client)
        for code in codes:
            found = await self.cds_client.company_id(code)
            if found is not None:
                self._company_ids[code] = found
        return codes

    async def resolve(self, company: str, needs: Sequence[LookupNeed]) -> dict[System, dict[str, str | None]]:
        out: dict[System, dict[str, str | None]] = {System.CDS: {}, System.SCM: {}}
        for need in needs:
            if need.source is System.CDS:
                value = await self._lookups.natural_key(need.spec, need.value)
            else:
                value = await self._lookups.guid_of(need.spec, company, need.value)
            out[need.source][need.spec.name] = value
        return out

    async def resolve_many(
        self, company: str, needs: Sequence[Sequence[LookupNeed]]
    ) -> list[dict[System, dict[str, str | None]]]:
        await prefetch(self.cds_client, self._lookups, company, (n for record in needs for n in record))
        return [await self.resolve(company, record) if record else {} for record in needs]

    def created(self, emap: EntityMap, company: str, key: str, cds_id: str) -> None:
        self.cds_client.remember(emap.cds.entity_set, company, emap.cds.key_field, key, cds_id)
