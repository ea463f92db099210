"""The naive relay: the baseline that prices the bridge's guarantees.

Receive a notification, map it with the same mapping files, write it to the other system, answer.
No queue, no ledger, no dedupe, no echo or conflict rules, no retries of its own, no ordering beyond
what the sender gives. It parses with the bridge's own listener code and JSON parser (orjson) and
writes with the bridge's own HTTP clients, so the difference to the bridge is exactly the
guarantees. Maps with lookups are not supported (the benchmark uses ``ship_via``).

Run: ``python -m bench.relay CONFIG.json`` (secret in ``RELAY_CLIENT_SECRET``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from bridge.core.errors import DualWriteError, RejectedError
from bridge.core.events import Operation, System
from bridge.core.mapping import EntityMap, MappingSet, load_mappings
from bridge.listeners.auth import SharedKeyAuth
from bridge.listeners.cds import parse_cds_notification
from bridge.listeners.scm import parse_scm_notification
from bridge.runtime import run, settle_heap
from bridge.systems.auth import TokenProvider
from bridge.systems.dataverse import DataverseClient
from bridge.systems.fno import FnoClient


class Relay:
    def __init__(self, config: dict[str, Any], secret: str) -> None:
        self.mappings: MappingSet = load_mappings(Path(config["mappings_dir"]))
        ca = config["ca_file"]

        def tokens(scope: str) -> TokenProvider:
            return TokenProvider(config["authority"], config["client_id"], secret, scope, ca_file=ca)

        self.cds = DataverseClient(config["cds_url"], tokens(config["cds_scope"]), ca_file=ca)
        self.scm = FnoClient(config["scm_url"], tokens(config["scm_scope"]), ca_file=ca)
        self.cds_auth = SharedKeyAuth([config["cds_key"]])
        self.scm_auth = SharedKeyAuth([config["scm_key"]])

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024, middlewares=[_errors])
        app.add_routes(
            [
                web.get("/healthz", self.healthz),
                web.post("/webhooks/scm", self.handle_scm),
                web.post("/webhooks/cds", self.handle_cds),
            ]
        )
        return app

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def handle_scm(self, request: web.Request) -> web.Response:
        self.scm_auth.check(request.headers, request.query)
        for event in parse_scm_notification(orjson.loads(await request.read()), self.mappings):
            if event is None or event.image is None:
                continue
            emap = self.mappings.maps[event.entity]
            payload = emap.to_target(System.SCM, event.image, {})
            await self._write_cds(emap, event.company, event.key, payload)
        return web.json_response({"ok": True})

    async def handle_cds(self, request: web.Request) -> web.Response:
        self.cds_auth.check(request.headers, request.query)
        change = parse_cds_notification(orjson.loads(await request.read()), request.headers, self.mappings)
        if change is None or change.image is None or change.key is None or change.company_id is None:
            return web.json_response({"ignored": True})
        company = await self.cds.company_code(change.company_id)
        if company is None:
            return web.json_response({"error": "unknown company"}, status=400)
        payload = change.emap.to_target(System.CDS, change.image, {})
        keys = {change.emap.scm.company_field: company.lower(), change.emap.scm.key_field: change.key}
        await self._write_scm(change.emap, change.operation, keys, payload)
        return web.json_response({"ok": True})

    async def _write_cds(self, emap: EntityMap, company: str, key: str, payload: dict[str, Any]) -> None:
        company_id = await self.cds.company_id(company)
        body = {
            **payload,
            emap.cds.key_field: key,
            f"{emap.cds.company_field}@odata.bind": f"/{emap.cds.company_entity_set}({company_id})",
        }
        # One call either way: an upsert by alternate key.
        keys = {emap.cds.company_read: company_id, emap.cds.key_field: key}
        await self.cds.upsert_by_key(emap.cds.entity_set, keys, body)

    async def _write_scm(
        self, emap: EntityMap, operation: Operation, keys: dict[str, str], payload: dict[str, Any]
    ) -> None:
        if operation is Operation.CREATE:
            await self.scm.create(emap.scm.entity_set, {**payload, **keys})
            return
        try:
            await self.scm.update(emap.scm.entity_set, keys, payload)
        except RejectedError as exc:  # F&O has no upsert: create what is missing
            if exc.status != 404:
                raise
            await self.scm.create(emap.scm.entity_set, {**payload, **keys})


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except DualWriteError as exc:
        return web.json_response({"error": str(exc)}, status=500)


async def serve(config: dict[str, Any], secret: str) -> None:
    relay = Relay(config, secret)
    app = relay.app()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(config["port"])).start()
    settle_heap(int(config["gc_gen0_threshold"]))  # as dualwrite serve does
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    await relay.cds.close()
    await relay.scm.close()


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    # The same event loop as ``dualwrite serve``, so the ratio to the relay prices only the guarantees.
    run(serve(config, os.environ["RELAY_CLIENT_SECRET"]), config["event_loop"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
