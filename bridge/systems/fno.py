"""Finance and Operations OData client: rows by composite key (with ``dataAreaId``), cross-company
queries with paging, create / update / delete. Values travel in F&O's OData JSON form (enum labels)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.systems.client import ServiceClient
from bridge.systems.odata import get_one, key_segment, query_all

# Without it F&O answers with the caller's default company only (protocols.md).
CROSS_COMPANY = {"cross-company": "true"}


class FnoClient(ServiceClient):
    """``base_url`` is the OData root, e.g. ``https://host.operations.dynamics.com/data/``."""

    system = "scm"

    async def get(
        self, entity_set: str, keys: Mapping[str, Any], select: list[str] | None = None
    ) -> dict[str, Any] | None:
        """One row by its full key (``{"dataAreaId": "usmf", "WarehouseId": "11"}``), or None."""
        params = dict(CROSS_COMPANY)
        if select:
            params["$select"] = ",".join(select)
        return await get_one(self.http, entity_set + key_segment(keys), params)

    async def query(
        self,
        entity_set: str,
        filter: str | None = None,
        select: list[str] | None = None,
        top: int | None = None,
    ) -> list[dict[str, Any]]:
        """All matching rows of every company, following ``@odata.nextLink`` (stops at ``top``)."""
        return await query_all(
            self.http, entity_set, filter=filter, select=select, top=top, params=CROSS_COMPANY
        )

    async def create(self, entity_set: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """POST a row (``dataAreaId`` and key included in ``payload``); returns the created row."""
        resp = await self.http.request(
            "POST", entity_set, json_body=dict(payload), headers={"Prefer": "return=representation"}
        )
        return dict(resp.body) if isinstance(resp.body, dict) else dict(payload)

    async def update(
        self,
        entity_set: str,
        keys: Mapping[str, Any],
        payload: Mapping[str, Any],
        if_match: str | None = None,
    ) -> str | None:
        """PATCH an existing row (404 -> RejectedError: F&O has no upsert); returns its new ETag.
        With ``if_match`` (an ETag) a row changed since then answers 412 (RejectedError)."""
        resp = await self.http.request(
            "PATCH",
            entity_set + key_segment(keys),
            params=CROSS_COMPANY,
            json_body=dict(payload),
            headers={"If-Match": if_match} if if_match else None,
        )
        return resp.headers.get("ETag")

    async def delete(self, entity_set: str, keys: Mapping[str, Any]) -> bool:
        """Delete a row; False when it was already gone."""
        resp = await self.http.request(
            "DELETE", entity_set + key_segment(keys), params=CROSS_COMPANY, accept=(404,)
        )
        return resp.status != 404
