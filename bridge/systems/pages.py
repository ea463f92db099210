"""Reading a mapped table of either system page by page, one company at a time, in key order.

- Dataverse: ``Prefer: odata.maxpagesize=N`` and ``@odata.nextLink`` (powerapps-docs,
  developer/data-platform/webapi/query/page-results.md: at most 5,000 rows a page), filtered on the
  company lookup (``_msdyn_company_value eq <guid>``).
- F&O: ``cross-company=true`` with a ``dataAreaId`` filter (without it F&O answers with the caller's
  default company only: fin-ops-core/dev-itpro/data-entities/odata.md), following ``@odata.nextLink``
  (pages of at most 10,000 rows).

Both are ordered by the natural key (``$orderby``), so ``bridge.core.pairing`` can pair them as they
stream; ``after`` reads on from a key (``key gt 'X'``), where a resumed run left off. Each page comes
with the time its request was sent: every change made there before it is in the page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from bridge.core.errors import RejectedError
from bridge.core.events import System
from bridge.core.mapping import EntityMap
from bridge.core.pairing import SideRecord
from bridge.engine.syncports import Page
from bridge.systems.dataverse import DataverseClient
from bridge.systems.fno import CROSS_COMPANY, FnoClient
from bridge.systems.odata import literal
from bridge.systems.sides import parse_timestamp

CDS_PAGE_SIZE = 5000  # Dataverse's largest page
SCM_PAGE_SIZE = 10000  # F&O's largest page


def cds_filter(emap: EntityMap, company_id: str, after: str | None) -> str:
    flt = f"{emap.cds.company_read} eq {company_id}"
    return flt if after is None else f"{flt} and {emap.cds.key_field} gt {literal(after)}"


def scm_filter(emap: EntityMap, company: str, after: str | None) -> str:
    flt = f"{emap.scm.company_field} eq {literal(company.lower())}"
    return flt if after is None else f"{flt} and {emap.scm.key_field} gt {literal(after)}"


async def cds_pages(
    client: DataverseClient,
    emap: EntityMap,
    company: str,
    *,
    after: str | None = None,
    page_size: int = CDS_PAGE_SIZE,
) -> AsyncIterator[Page]:
    """Dataverse's rows of ``emap`` in ``company``, in key order, a page at a time."""
    company_id = await client.company_id(company)
    if company_id is None:
        yield Page(System.CDS, [], datetime.now(UTC), True)
        return
    select = sorted({*emap.select_columns(System.CDS), "modifiedon"})
    params = {
        "$filter": cds_filter(emap, company_id, after),
        "$select": ",".join(select),
        "$orderby": emap.cds.key_field,
    }
    headers = {"Prefer": f"odata.maxpagesize={page_size}"}
    async for rows, read_at, last in _pages(client, emap.cds.entity_set, params, headers):
        records = [_cds_record(emap, company, row) for row in rows]
        yield Page(System.CDS, [r for r in records if r is not None], read_at, last)


async def scm_pages(
    client: FnoClient,
    emap: EntityMap,
    company: str,
    *,
    after: str | None = None,
    page_size: int = SCM_PAGE_SIZE,
) -> AsyncIterator[Page]:
    """F&O's rows of ``emap`` in ``company`` (its ``dataAreaId``), in key order, a page at a time."""
    # Mapped columns, key and company only: F&O entities have no common modified-time property,
    # and asking for a property an entity lacks is a 400.
    select = emap.select_columns(System.SCM)
    params = {
        **CROSS_COMPANY,
        "$filter": scm_filter(emap, company, after),
        "$select": ",".join(select),
        "$orderby": emap.scm.key_field,
    }
    headers = {"Prefer": f"odata.maxpagesize={page_size}"}
    async for rows, read_at, last in _pages(client, emap.scm.entity_set, params, headers):
        records = [_scm_record(emap, company, row) for row in rows]
        yield Page(System.SCM, [r for r in records if r is not None], read_at, last)


async def _pages(
    client: DataverseClient | FnoClient,
    entity_set: str,
    params: dict[str, str],
    headers: dict[str, str],
) -> AsyncIterator[tuple[list[dict[str, Any]], datetime, bool]]:
    url: str | None = entity_set
    first = True
    while url is not None:
        read_at = datetime.now(UTC)
        resp = await client.http.request("GET", url, params=params if first else None, headers=headers)
        first = False
        body = resp.body if isinstance(resp.body, dict) else {}
        rows = body.get("value", [])
        if not isinstance(rows, list):
            raise RejectedError(
                f"{client.system}: {entity_set} answered no 'value' list", system=client.system
            )
        url = body.get("@odata.nextLink")
        yield rows, read_at, url is None


def _cds_record(emap: EntityMap, company: str, row: dict[str, Any]) -> SideRecord | None:
    key = row.get(emap.cds.key_field)
    if key is None or key == "":
        return None  # a row without its natural key cannot be paired (nor synced live)
    rid = row.get(emap.cds.primary_id)
    return SideRecord(
        company.upper(),
        str(key),
        row,
        record_id=str(rid).lower() if rid else None,
        etag=row.get("@odata.etag"),
        modified_at=parse_timestamp(row.get("modifiedon")),
    )


def _scm_record(emap: EntityMap, company: str, row: dict[str, Any]) -> SideRecord | None:
    key = row.get(emap.scm.key_field)
    if key is None or key == "":
        return None
    return SideRecord(
        company.upper(),
        str(key),
        row,
        etag=row.get("@odata.etag"),
        modified_at=parse_timestamp(row.get("ModifiedDateTime")),
    )


async def companies(cds: DataverseClient, scm: FnoClient) -> list[str]:
    """Every company code either system knows (upper case, sorted): Dataverse's ``cdm_companies``,
    F&O's ``LegalEntities``."""
    cds_rows = await cds.query("cdm_companies", select=["cdm_companycode"])
    scm_rows = await scm.query("LegalEntities", select=["LegalEntityId"])
    codes = {str(r["cdm_companycode"]).upper() for r in cds_rows if r.get("cdm_companycode")}
    codes |= {str(r["LegalEntityId"]).upper() for r in scm_rows if r.get("LegalEntityId")}
    return sorted(codes)


async def cds_count(client: DataverseClient, emap: EntityMap, company: str) -> int | None:
    """How many rows ``company`` holds (``<set>/$count``: powerapps-docs, developer/data-platform/
    webapi/query/count-rows.md; Dataverse stops counting at 5,000, so more reads as 5,000)."""
    company_id = await client.company_id(company)
    if company_id is None:
        return 0
    params = {"$filter": cds_filter(emap, company_id, None)}
    return _number((await client.http.request("GET", f"{emap.cds.entity_set}/$count", params=params)).text)


async def scm_count(client: FnoClient, emap: EntityMap, company: str) -> int | None:
    """How many rows F&O holds in ``company`` (``<set>/$count``, OData URL conventions 4.8)."""
    params = {**CROSS_COMPANY, "$filter": scm_filter(emap, company, None)}
    return _number((await client.http.request("GET", f"{emap.scm.entity_set}/$count", params=params)).text)


def _number(text: str) -> int | None:
    try:
        return int(text.strip().lstrip("\ufeff"))
    except ValueError:
        return None
