"""The engine's sides (``bridge.engine.sideports``) over the two system clients, so the applier
treats Dataverse and F&O alike.

Each side reads, creates, updates and deletes a record addressed by (map, company, natural key).
Lookup resolution always goes through Dataverse (F&O references are natural keys already); the
company and lookup caches live in ``DataverseClient``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bridge.core.errors import ConflictError, RejectedError
from bridge.core.events import System
from bridge.core.mapping import EntityMap, LookupSpec, MappingSet
from bridge.engine.sideports import Row, Sides
from bridge.systems.connect import Systems
from bridge.systems.dataverse import DataverseClient
from bridge.systems.docsides import ClientDocumentSide
from bridge.systems.fno import FnoClient


def sides_for(systems: Systems, mappings: MappingSet) -> Sides:
    """The engine's view of both systems, over these clients."""
    return Sides(
        cds=CdsSide(systems.cds, mappings),
        scm=ScmSide(systems.scm),
        documents=ClientDocumentSide(systems.cds, systems.scm),
    )


def parse_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _write_conflict(exc: RejectedError) -> RejectedError | ConflictError:
    """What a refused write says about the record on that side, when it says anything:
    412 (our If-Match ETag is stale: changed since), 404 (gone), a duplicate key (created since)."""
    duplicate = exc.code in ("0x80040237", "duplicate") or (
        exc.status == 412 and "duplicate" in exc.message.lower()
    )
    if duplicate:
        return ConflictError(
            f"already exists: {exc.message}", system=exc.system, status=exc.status, code="exists"
        )
    if exc.status == 412:
        return ConflictError(f"changed since: {exc.message}", system=exc.system, status=412, code="stale")
    if exc.status == 404:
        return ConflictError(f"not found: {exc.message}", system=exc.system, status=404, code="missing")
    return exc


class CdsSide:
    system = System.CDS

    def __init__(self, client: DataverseClient, mappings: MappingSet) -> None:
        self.client = client
        # Primary id column of every Dataverse table a lookup can point at.
        self._primary_ids = {m.cds.entity_set: m.cds.primary_id for m in mappings.maps.values()}

    def primary_id(self, entity_set: str) -> str:
        known = self._primary_ids.get(entity_set)
        if known:
            return known
        singular = entity_set[:-3] + "y" if entity_set.endswith("ies") else entity_set.removesuffix("s")
        return singular + "id"  # Dataverse convention: <logical name>id

    async def company_id(self, company: str) -> str:
        found = await self.client.company_id(company)
        if found is None:
            raise RejectedError(
                f"company {company.upper()} does not exist in Dataverse", system="cds", status=404
            )
        return found

    async def company_code(self, company_id: str) -> str | None:
        return await self.client.company_code(company_id)

    async def natural_key(self, spec: LookupSpec, guid: str) -> str | None:
        return await self.client.resolve_key(spec.cds_entity_set, guid, spec.cds_key_field)

    async def guid_of(self, spec: LookupSpec, company: str, natural: str) -> str | None:
        return await self.client.resolve_id(
            spec.cds_entity_set, self.primary_id(spec.cds_entity_set), spec.cds_key_field, natural, company
        )

    def _row(self, emap: EntityMap, image: dict[str, Any]) -> Row:
        rid = image.get(emap.cds.primary_id)
        return Row(
            image=image,
            record_id=str(rid).lower() if rid else None,
            etag=image.get("@odata.etag"),
            modified_at=parse_timestamp(image.get("modifiedon")),
        )

    async def read_by_id(self, emap: EntityMap, record_id: str) -> Row | None:
        image = await self.client.get(emap.cds.entity_set, record_id)
        return None if image is None else self._row(emap, image)

    async def read(
        self, emap: EntityMap, company: str, key: str, *, record_id: str | None = None
    ) -> Row | None:
        image: dict[str, Any] | None = None
        if record_id:
            image = await self.client.get(emap.cds.entity_set, record_id)
        if image is None:
            keys = {emap.cds.company_read: await self.company_id(company), emap.cds.key_field: key}
            image = await self.client.get_by_key(emap.cds.entity_set, keys)
        return None if image is None else self._row(emap, image)

    async def create(
        self,
        emap: EntityMap,
        company: str,
        key: str,
        payload: dict[str, Any],
        *,
        record_id: str | None = None,
    ) -> tuple[str | None, str | None]:
        company_id = await self.company_id(company)
        body = {
            **payload,
            emap.cds.key_field: key,
            f"{emap.cds.company_field}@odata.bind": f"/{emap.cds.company_entity_set}({company_id})",
        }
        if record_id:
            body[emap.cds.primary_id] = record_id
        try:
            return await self.client.create_with_etag(
                emap.cds.entity_set, body, primary_id=emap.cds.primary_id
            )
        except RejectedError as exc:
            raise _write_conflict(exc) from exc

    async def update(
        self, emap: EntityMap, company: str, key: str, row: Row, payload: dict[str, Any]
    ) -> str | None:
        assert row.record_id is not None
        try:
            return await self.client.update(emap.cds.entity_set, row.record_id, payload, if_match=row.etag)
        except RejectedError as exc:
            raise _write_conflict(exc) from exc

    async def delete(self, emap: EntityMap, company: str, key: str, row: Row) -> None:
        assert row.record_id is not None
        await self.client.delete(emap.cds.entity_set, row.record_id)
        self.client.forget(emap.cds.entity_set, row.record_id)


class ScmSide:
    system = System.SCM

    def __init__(self, client: FnoClient) -> None:
        self.client = client

    @staticmethod
    def keys(emap: EntityMap, company: str, key: str) -> dict[str, str]:
        return {emap.scm.company_field: company.lower(), emap.scm.key_field: key}

    async def read(
        self, emap: EntityMap, company: str, key: str, *, record_id: str | None = None
    ) -> Row | None:
        image = await self.client.get(emap.scm.entity_set, self.keys(emap, company, key))
        if image is None:
            return None
        return Row(
            image=image,
            etag=image.get("@odata.etag"),
            modified_at=parse_timestamp(image.get("ModifiedDateTime")),
        )

    async def create(
        self,
        emap: EntityMap,
        company: str,
        key: str,
        payload: dict[str, Any],
        *,
        record_id: str | None = None,
    ) -> tuple[str | None, str | None]:
        try:
            row = await self.client.create(emap.scm.entity_set, {**payload, **self.keys(emap, company, key)})
        except RejectedError as exc:
            raise _write_conflict(exc) from exc
        return None, row.get("@odata.etag")

    async def update(
        self, emap: EntityMap, company: str, key: str, row: Row, payload: dict[str, Any]
    ) -> str | None:
        try:
            return await self.client.update(
                emap.scm.entity_set, self.keys(emap, company, key), payload, if_match=row.etag
            )
        except RejectedError as exc:
            raise _write_conflict(exc) from exc

    async def delete(self, emap: EntityMap, company: str, key: str, row: Row) -> None:
        await self.client.delete(emap.scm.entity_set, self.keys(emap, company, key))
