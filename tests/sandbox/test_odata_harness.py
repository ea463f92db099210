"""Shared test harness for the OData engines: a server on 127.0.0.1:0 whose tiny middleware sets the
principal (what S2's auth middleware does for real), and hooks that record or fail."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.sandbox.contracts import HookFailed, Principal, RecordChange


def _principal(client_id: str) -> Principal:
    return Principal(
        client_id=client_id,
        object_id=str(uuid.uuid5(uuid.NAMESPACE_URL, "dualwrite-sandbox-sp:" + client_id)),
        user_id=str(uuid.uuid5(uuid.NAMESPACE_URL, "dualwrite-sandbox-user:" + client_id)),
        name=client_id,
    )


USER = _principal("sandbox-user")
BRIDGE = _principal("dualwrite-bridge")
PRINCIPALS = {"user": USER, "bridge": BRIDGE}
AS_BRIDGE = {"x-test-principal": "bridge"}
ANONYMOUS = {"x-test-principal": "none"}


@web.middleware
async def principal_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    who = request.headers.get("x-test-principal", "user")
    if who in PRINCIPALS:
        with warnings.catch_warnings():  # the seam is the plain key "principal" (contracts.py)
            warnings.simplefilter("ignore", web.NotAppKeyWarning)
            request["principal"] = PRINCIPALS[who]
    return await handler(request)  # type: ignore[no-any-return]


class RecordingHooks:
    def __init__(self) -> None:
        self.before: list[RecordChange] = []
        self.after: list[RecordChange] = []
        self.fail: HookFailed | None = None
        self.fail_on: str | None = None  # fail only for this message ("Create"/"Update"/"Delete")
        self.during: Any = None  # async callable run inside before_commit (e.g. a read)

    async def before_commit(self, change: RecordChange) -> None:
        self.before.append(change)
        if self.during is not None:
            await self.during(change)
        if self.fail is not None and (self.fail_on is None or self.fail_on == change.message):
            raise self.fail

    async def after_commit(self, change: RecordChange) -> None:
        self.after.append(change)


@asynccontextmanager
async def serve(service: Any) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[principal_middleware])
    service.add_routes(app)
    client = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        service.close()
