"""The engine's ``DocumentSide`` (``bridge.engine.sideports``) over the two system clients: rows of any
table by key or by column values, and a document's writes as one OData ``$batch`` change set (all
applied or none, with the refusing system's own message)."""

from __future__ import annotations

from typing import Any

from bridge.core.errors import RejectedError
from bridge.core.events import System
from bridge.engine.sideports import DocWrite
from bridge.systems.batch import BatchOperation, build_changeset, parse_batch_response, raise_for_batch
from bridge.systems.client import ServiceClient
from bridge.systems.dataverse import DataverseClient
from bridge.systems.fno import FnoClient
from bridge.systems.odata import id_segment, key_segment, literal

# Refusals of a change set whose answer is read here; 429 and 5xx are retried by the HTTP client.
REFUSALS = tuple(s for s in range(400, 500) if s != 429)


def _equals_filter(equals: dict[str, Any]) -> str:
    parts = []
    for column, value in equals.items():
        is_lookup = column.startswith("_") and column.endswith("_value")
        parts.append(f"{column} eq {literal(value, bare_guid=is_lookup)}")
    return " and ".join(parts)


def _path(system: System, write: DocWrite) -> str:
    if write.method == "POST":
        return write.entity_set
    if system is System.CDS and len(write.keys) == 1:
        (value,) = write.keys.values()
        return write.entity_set + id_segment(str(value))
    return write.entity_set + key_segment(write.keys)


class ClientDocumentSide:
    def __init__(self, cds: DataverseClient, scm: FnoClient) -> None:
        self.cds = cds
        self.scm = scm

    def _client(self, system: System) -> ServiceClient:
        return self.cds if system is System.CDS else self.scm

    async def get(self, system: System, entity_set: str, keys: dict[str, Any]) -> dict[str, Any] | None:
        if system is System.SCM:
            return await self.scm.get(entity_set, keys)
        if len(keys) == 1:
            (column, value) = next(iter(keys.items()))
            if column.endswith("id") and not column.startswith("_"):
                return await self.cds.get(entity_set, str(value))
        return await self.cds.get_by_key(entity_set, keys)

    async def find(self, system: System, entity_set: str, equals: dict[str, Any]) -> list[dict[str, Any]]:
        if system is System.SCM:
            return await self.scm.query(entity_set, filter=_equals_filter(equals))
        return await self.cds.query(entity_set, filter=_equals_filter(equals))

    async def key_of(self, entity_set: str, record_id: str, key_field: str) -> str | None:
        # The client's cache of natural keys, shared with the entity maps' lookups.
        return await self.cds.resolve_key(entity_set, record_id, key_field)

    async def changeset(self, system: System, writes: list[DocWrite]) -> None:
        if not writes:
            return
        ops = []
        for write in writes:
            path = _path(system, write)
            if system is System.SCM and write.method != "POST":
                path += "?cross-company=true"
            headers = {"If-Match": "*"} if write.method == "PATCH" else {}
            ops.append(BatchOperation(write.method, path, write.body, headers))
        client = self._client(system)
        content_type, body = build_changeset(client.http.base_url, ops)
        # A refused change set answers with the refusing operation's status and that one response
        # inside the multipart body: read it for the system's own message, not the envelope.
        resp = await client.http.request(
            "POST", "$batch", raw_body=body, content_type=content_type, accept=REFUSALS
        )
        results = parse_batch_response(resp.headers.get("Content-Type", ""), resp.text)
        if resp.status >= 400 and not results:
            raise RejectedError(
                f"{client.system} {resp.status}: {resp.text[:500]}", system=client.system, status=resp.status
            )
        raise_for_batch(client.system, results, len(ops))
