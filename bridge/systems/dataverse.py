"""Dataverse Web API client: rows by id or alternate key, queries with paging, writes, company and
lookup resolution (natural key <-> GUID, cached).

Rows are returned in the Web API read form (lookups as ``_<col>_value``); payloads are written in the
write form (lookups as ``<nav>@odata.bind``), as ``bridge.core.mapping`` produces them.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.core.errors import RejectedError
from bridge.systems.client import ServiceClient
from bridge.systems.http import RetryPolicy, TokenSource
from bridge.systems.odata import get_one, id_from_entity_url, id_segment, key_segment, literal, query_all
from bridge.systems.transport import Transport

COMPANY_SET = "cdm_companies"
COMPANY_ID = "cdm_companyid"
COMPANY_CODE = "cdm_companycode"
COMPANY_LOOKUP = "_msdyn_company_value"  # read form of the msdyn_company lookup on synced tables
PAGE_SIZE = 500


@dataclass(frozen=True, slots=True)
class WhoAmI:
    user_id: str
    business_unit_id: str
    organization_id: str


class _Lru:
    """A small bounded LRU map (no TTL: entries are dropped on 404 or by ``forget``)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[tuple[str, ...], str] = OrderedDict()

    def get(self, key: tuple[str, ...]) -> str | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: tuple[str, ...], value: str) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self._size:
            self._data.popitem(last=False)

    def drop(self, key: tuple[str, ...]) -> None:
        self._data.pop(key, None)

    def drop_where(self, matches: Callable[[tuple[str, ...], str], bool]) -> None:
        for key in [k for k, v in self._data.items() if matches(k, v)]:
            del self._data[key]

    def __len__(self) -> int:
        return len(self._data)


class DataverseClient(ServiceClient):
    """``base_url`` is the Web API root, e.g. ``https://org.crm.dynamics.com/api/data/v9.2/``."""

    system = "cds"

    def __init__(
        self,
        base_url: str,
        tokens: TokenSource,
        *,
        ca_file: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: Transport | None = None,
        cache_size: int = 4096,
    ) -> None:
        super().__init__(base_url, tokens, ca_file=ca_file, timeout=timeout, retry=retry, transport=transport)
        self._ids = _Lru(cache_size)  # (entity_set, company_code, key_column, key) -> GUID
        self._keys = _Lru(cache_size)  # (entity_set, GUID, key_column) -> natural key
        self._companies: dict[str, str] = {}  # code (upper) -> GUID
        self._company_codes: dict[str, str] = {}  # GUID -> code (upper)
        self._companies_loading: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------ reads
    async def who_am_i(self) -> WhoAmI:
        body = (await self.http.request("GET", "WhoAmI")).body or {}
        return WhoAmI(str(body["UserId"]).lower(), str(body["BusinessUnitId"]), str(body["OrganizationId"]))

    async def get(
        self, entity_set: str, record_id: str, select: list[str] | None = None
    ) -> dict[str, Any] | None:
        """One row by primary id, or None if it does not exist."""
        params = {"$select": ",".join(select)} if select else None
        return await get_one(self.http, entity_set + id_segment(record_id), params)

    async def get_by_key(
        self, entity_set: str, keys: Mapping[str, Any], select: list[str] | None = None
    ) -> dict[str, Any] | None:
        """One row by alternate key (``{"_msdyn_company_value": guid, "msdyn_name": "x"}``), or None."""
        params = {"$select": ",".join(select)} if select else None
        return await get_one(self.http, entity_set + key_segment(keys), params)

    async def query(
        self,
        entity_set: str,
        filter: str | None = None,
        select: list[str] | None = None,
        top: int | None = None,
        *,
        page_size: int = PAGE_SIZE,
    ) -> list[dict[str, Any]]:
        """All matching rows, following ``@odata.nextLink`` (stops at ``top`` rows).

        Dataverse ignores ``$top`` when ``odata.maxpagesize`` is also asked for (powerapps-docs,
        developer/data-platform/webapi/query/page-results.md): up to a page, ``$top`` alone; beyond,
        pages of ``page_size`` read until ``top`` rows."""
        if top is not None and top <= page_size:
            return await query_all(self.http, entity_set, filter=filter, select=select, top=top)
        headers = {"Prefer": f"odata.maxpagesize={page_size}"}
        return await query_all(
            self.http, entity_set, filter=filter, select=select, limit=top, headers=headers
        )

    # ------------------------------------------------------------------ writes
    async def create(
        self, entity_set: str, payload: Mapping[str, Any], *, primary_id: str | None = None
    ) -> str:
        """Create a row; returns its GUID (from ``OData-EntityId``, else the representation)."""
        return (await self.create_with_etag(entity_set, payload, primary_id=primary_id))[0]

    async def create_with_etag(
        self, entity_set: str, payload: Mapping[str, Any], *, primary_id: str | None = None
    ) -> tuple[str, str | None]:
        """Create a row; returns its GUID and its ETag (None if the answer had none)."""
        resp = await self.http.request(
            "POST", entity_set, json_body=dict(payload), headers={"Prefer": "return=representation"}
        )
        found = id_from_entity_url(resp.headers.get("OData-EntityId"))
        body = resp.body if isinstance(resp.body, dict) else {}
        if found is None and primary_id and body.get(primary_id):
            found = str(body[primary_id]).lower()
        if found is None:
            found = id_from_entity_url(body.get("@odata.id"))
        if found is None:
            raise RejectedError(f"cds: created a row in {entity_set} but no id came back", system="cds")
        return found, resp.headers.get("ETag") or body.get("@odata.etag")

    async def update(
        self, entity_set: str, record_id: str, payload: Mapping[str, Any], if_match: str | None = None
    ) -> str | None:
        """PATCH an existing row; returns its new ETag. ``If-Match: *`` is always sent so an update never
        creates; pass an etag for optimistic concurrency (412 -> RejectedError with status 412)."""
        headers = {"If-Match": if_match or "*"}
        resp = await self.http.request(
            "PATCH", entity_set + id_segment(record_id), json_body=dict(payload), headers=headers
        )
        return resp.headers.get("ETag")

    async def delete(self, entity_set: str, record_id: str) -> bool:
        """Delete a row; False when it was already gone (deletes are idempotent)."""
        resp = await self.http.request("DELETE", entity_set + id_segment(record_id), accept=(404,))
        return resp.status != 404

    async def upsert_by_key(
        self,
        entity_set: str,
        keys: Mapping[str, Any],
        payload: Mapping[str, Any],
        *,
        create_only: bool = False,
        update_only: bool = False,
    ) -> dict[str, Any]:
        """PATCH by alternate key: creates or updates; returns the row. ``create_only`` sends
        ``If-None-Match: *`` (412 if it exists), ``update_only`` sends ``If-Match: *`` (404 if missing)."""
        headers = {"Prefer": "return=representation"}
        if create_only:
            headers["If-None-Match"] = "*"
        if update_only:
            headers["If-Match"] = "*"
        resp = await self.http.request(
            "PATCH", entity_set + key_segment(keys), json_body=dict(payload), headers=headers
        )
        return dict(resp.body or {})

    # ------------------------------------------------------------------ companies
    async def _load_companies(self) -> None:
        """Reload the company table; callers arriving while a reload runs share it (a cold cache
        under load would otherwise send one identical query per change)."""
        if self._companies_loading is None:
            loading = asyncio.ensure_future(self._fetch_companies())
            self._companies_loading = loading
            loading.add_done_callback(self._companies_loaded)
        await asyncio.shield(self._companies_loading)

    def _companies_loaded(self, loading: asyncio.Future[None]) -> None:
        self._companies_loading = None
        if not loading.cancelled():
            loading.exception()  # retrieved here too: every waiter may have been cancelled

    async def _fetch_companies(self) -> None:
        rows = await self.query(COMPANY_SET, select=[COMPANY_ID, COMPANY_CODE])
        for row in rows:
            code, guid = row.get(COMPANY_CODE), row.get(COMPANY_ID)
            if isinstance(code, str) and isinstance(guid, str):
                self._companies[code.upper()] = guid.lower()
                self._company_codes[guid.lower()] = code.upper()

    async def company_id(self, code: str) -> str | None:
        """The ``cdm_company`` GUID of a company code (case-insensitive); reloads once on a miss."""
        code = code.upper()
        if code not in self._companies:
            await self._load_companies()
        return self._companies.get(code)

    async def company_code(self, company_id: str) -> str | None:
        """The company code (upper case) of a ``cdm_company`` GUID; reloads once on a miss."""
        company_id = company_id.lower()
        if company_id not in self._company_codes:
            await self._load_companies()
        return self._company_codes.get(company_id)

    async def code_for_cds_company(self, company_id: str) -> str | None:
        """``CompanyDirectory`` protocol of the listeners."""
        return await self.company_code(company_id)

    # ------------------------------------------------------------------ lookups
    async def resolve_id(
        self, entity_set: str, primary_id: str, key_column: str, key: str, company: str
    ) -> str | None:
        """GUID of the row of ``entity_set`` whose ``key_column`` is ``key`` in ``company``, or None."""
        cache_key = (entity_set, company.upper(), key_column, key)
        cached = self._ids.get(cache_key)
        if cached is not None:
            return cached
        company_id = await self.company_id(company)
        if company_id is None:
            return None
        flt = f"{key_column} eq {literal(key)} and {COMPANY_LOOKUP} eq {company_id}"
        rows = await self.query(entity_set, filter=flt, select=[primary_id], top=1)
        if not rows or not rows[0].get(primary_id):
            return None
        found = str(rows[0][primary_id]).lower()
        self._ids.put(cache_key, found)
        self._keys.put((entity_set, found, key_column), key)
        return found

    async def resolve_key(self, entity_set: str, record_id: str, key_column: str) -> str | None:
        """Natural key of the row ``record_id`` of ``entity_set``; None (and cache dropped) if gone."""
        cache_key = (entity_set, record_id.lower(), key_column)
        cached = self._keys.get(cache_key)
        if cached is not None:
            return cached
        row = await self.get(entity_set, record_id, select=[key_column])
        if row is None or row.get(key_column) is None:
            self.forget(entity_set, record_id)
            return None
        key = str(row[key_column])
        self._keys.put(cache_key, key)
        return key

    def known_id(self, entity_set: str, company: str, key_column: str, key: str) -> str | None:
        """The cached GUID of a natural key (no query), or None."""
        return self._ids.get((entity_set, company.upper(), key_column, key))

    def known_key(self, entity_set: str, record_id: str, key_column: str) -> str | None:
        """The cached natural key of a row (no query), or None."""
        return self._keys.get((entity_set, record_id.lower(), key_column))

    def remember_key(self, entity_set: str, record_id: str, key_column: str, key: str) -> None:
        self._keys.put((entity_set, record_id.lower(), key_column), key)

    def remember(self, entity_set: str, company: str, key_column: str, key: str, record_id: str) -> None:
        """A row just written (a sync run's create): lookups to it resolve from the cache."""
        found = record_id.lower()
        self._ids.put((entity_set, company.upper(), key_column, key), found)
        self._keys.put((entity_set, found, key_column), key)

    def forget(self, entity_set: str, record_id: str) -> None:
        """Drop cached mappings of a row that turned out to be missing (a 404 on use)."""
        record_id = record_id.lower()
        self._ids.drop_where(lambda k, v: k[0] == entity_set and v == record_id)
        self._keys.drop_where(lambda k, _v: k[0] == entity_set and k[1] == record_id)
