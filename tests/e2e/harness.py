"""End-to-end harness: the sandbox and the bridge in-process, talking over real HTTP(S).

A test acts as a person on either system (the sandbox's ``sandbox-user`` client), waits for the
bridge to carry the change over, and counts writes per principal in the emulators' write logs.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

from bridge.app import Bridge

T = TypeVar("T")


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class Harness:
    sandbox: Any
    bridge: Bridge
    keys: dict[str, Any]
    http: aiohttp.ClientSession
    company_id: str = ""
    _cache: dict[str, Any] = field(default_factory=dict)

    @property
    def info(self) -> Any:
        return self.sandbox.info

    # ---------------------------------------------------------------- acting as a person
    async def request(
        self,
        system: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        client: str = "user",
    ) -> Response:
        base = self.info.cds_url if system == "cds" else self.info.scm_url
        token = self.sandbox.token(client, "dataverse" if system == "cds" else "fno")
        all_headers = {"Authorization": f"Bearer {token}", **(headers or {})}
        async with self.http.request(method, f"{base}/{path}", json=body, headers=all_headers) as resp:
            text = await resp.text()
            parsed: Any = None
            if text:
                try:
                    parsed = await resp.json(content_type=None)
                except ValueError:
                    parsed = text
            return Response(resp.status, parsed, dict(resp.headers))

    async def cds_create(self, entity_set: str, body: dict[str, Any]) -> Response:
        payload = {**body, "msdyn_company@odata.bind": f"/cdm_companies({self.company_id})"}
        return await self.request(
            "cds", "POST", entity_set, payload, headers={"Prefer": "return=representation"}
        )

    async def cds_find(self, entity_set: str, key_field: str, key: str) -> dict[str, Any] | None:
        flt = f"{key_field} eq '{key}' and _msdyn_company_value eq {self.company_id}"
        resp = await self.request("cds", "GET", f"{entity_set}?$filter={flt}")
        assert resp.status == 200, resp.body
        rows = resp.body["value"]
        return rows[0] if rows else None

    async def cds_update(self, entity_set: str, record_id: str, body: dict[str, Any]) -> Response:
        return await self.request("cds", "PATCH", f"{entity_set}({record_id})", body)

    async def cds_delete(self, entity_set: str, record_id: str) -> Response:
        return await self.request("cds", "DELETE", f"{entity_set}({record_id})")

    async def scm_create(self, entity_set: str, body: dict[str, Any]) -> Response:
        return await self.request("scm", "POST", entity_set, {"dataAreaId": "usmf", **body})

    async def scm_find(self, entity_set: str, key_field: str, key: str) -> dict[str, Any] | None:
        resp = await self.request("scm", "GET", f"{entity_set}(dataAreaId='usmf',{key_field}='{key}')")
        if resp.status == 404:
            return None
        assert resp.status == 200, resp.body
        return dict(resp.body)

    async def scm_update(self, entity_set: str, key_field: str, key: str, body: dict[str, Any]) -> Response:
        return await self.request(
            "scm", "PATCH", f"{entity_set}(dataAreaId='usmf',{key_field}='{key}')", body
        )

    async def scm_delete(self, entity_set: str, key_field: str, key: str) -> Response:
        return await self.request("scm", "DELETE", f"{entity_set}(dataAreaId='usmf',{key_field}='{key}')")

    # ---------------------------------------------------------------- the bridge's ops API
    async def ops(self, method: str, path: str, body: Any = None) -> Response:
        headers = {"Authorization": f"Bearer {self.keys['admin_token']}"}
        async with self.http.request(method, f"{self.bridge.url}{path}", json=body, headers=headers) as resp:
            return Response(resp.status, await resp.json(content_type=None), dict(resp.headers))

    # ---------------------------------------------------------------- observing
    def writes(self, system: str, *, by: str = "bridge", entity_set: str | None = None) -> int:
        """Committed writes on ``system`` made by the bridge's or the person's client."""
        service = self.sandbox.dataverse if system == "cds" else self.sandbox.fno
        client_id = self.info.client_id if by == "bridge" else self.info.user_client_id
        return sum(
            1
            for w in service.write_log
            if w.client_id == client_id and (entity_set is None or w.entity_set == entity_set)
        )

    async def settle(self, timeout: float = 15.0) -> None:
        """Wait until every notification was delivered and the bridge's queue is empty."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            await self.sandbox.notifier.drain()
            if await self.bridge.queue.depth() == 0 and not self.bridge.engine._inflight:
                await asyncio.sleep(0.05)
                await self.sandbox.notifier.drain()
                if await self.bridge.queue.depth() == 0 and not self.bridge.engine._inflight:
                    return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"bridge did not settle: depth {await self.bridge.queue.depth()}")
            await asyncio.sleep(0.05)


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 10.0, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: T | None = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}: last {last!r}")


def client_context(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)
