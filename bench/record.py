"""Record the notifications the emulators really send, to replay them into the bridge or the relay.

A person (the sandbox's user client) creates ``records`` ship vias on the source system and then
makes ``updates`` changes spread over them. The emulator notifies a local recorder exactly as it
would notify the bridge (F&O data events; Dataverse asynchronous webhook steps registered by the
bridge's own ``register_webhooks``). Replaying the recording sends the same bytes, headers and query,
so the measured process gets real traffic while the emulators only serve the target side.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from aiohttp import web

from bench.common import CDS_FIELD, CDS_KEY, CDS_SET, MAPPINGS, SCM_FIELD, SCM_KEY, SCM_SET, client_ssl
from bench.driver import Call
from bridge.core.mapping import load_mappings
from bridge.register import register_webhooks
from bridge.sandbox.notify.fno import DataEventEndpoint
from bridge.systems.auth import TokenProvider
from bridge.systems.dataverse import DataverseClient

Source = Literal["scm", "cds"]
_VALUE = re.compile(rb'"[cu](\d{7})"')
KEEP_HEADERS = ("content-type", "x-dualwrite-key")


@dataclass(frozen=True, slots=True)
class Note:
    """One recorded notification: which record, which change (source order), and the request."""

    record: int
    seq: int
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def call(self, base_url: str) -> Call:
        url = f"{base_url}{self.path}" + (f"?{self.query}" if self.query else "")
        return Call("POST", url, self.headers, self.body)


@dataclass
class Recording:
    source: Source
    prefix: str
    records: int
    creates: list[Note]
    updates: list[Note]

    def key(self, record: int) -> str:
        return f"{self.prefix}{record:05d}"

    def final_values(self) -> dict[str, str]:
        """Natural key -> the description it ends with."""
        out: dict[str, str] = {}
        for update, notes in ((False, self.creates), (True, self.updates)):
            for note in notes:  # in order: a record's last note wins
                out[self.key(note.record)] = value_text(note.seq, update)
        return out


def value_text(seq: int, update: bool) -> str:
    return f"{'u' if update else 'c'}{seq:07d}"


class Recorder:
    def __init__(self, prefix: str) -> None:
        self.notes: list[Note] = []
        self._key = re.compile(b'"' + re.escape(prefix.encode()) + rb'(\d{5})"')
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        seqs = [int(m) for m in _VALUE.findall(body)]
        record = self._key.search(body)
        if seqs and record is not None:  # the newest value is the change (a pre image holds older ones)
            headers = tuple((k, v) for k, v in request.headers.items() if k.lower() in KEEP_HEADERS)
            headers += tuple((k, v) for k, v in request.headers.items() if k.lower().startswith("x-ms-"))
            self.notes.append(
                Note(int(record.group(1)), max(seqs), request.path, request.query_string, headers, body)
            )
        return web.json_response({"ok": True})

    async def start(self) -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/webhooks/{kind}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def record_changes(
    sandbox: Any,
    source: Source,
    *,
    records: int,
    updates: int,
    prefix: str,
    cds_key: str,
    scm_key: str,
    lanes: int = 32,
) -> Recording:
    info = sandbox.info
    recorder = Recorder(prefix)
    await recorder.start()
    try:
        if source == "scm":
            sandbox.notifier.fno.add_endpoint(
                DataEventEndpoint(
                    name="recorder",
                    url=f"{recorder.url}/webhooks/scm",
                    headers={"x-dualwrite-key": scm_key},
                    entity_sets=[SCM_SET],
                )
            )
        else:
            tokens = TokenProvider(
                info.authority, info.client_id, info.client_secret, info.cds_scope, ca_file=info.ca_file
            )
            async with DataverseClient(info.cds_url, tokens, ca_file=info.ca_file) as client:
                await register_webhooks(
                    client,
                    load_mappings(MAPPINGS),
                    webhook_url=f"{recorder.url}/webhooks/cds",
                    webhook_key=cds_key,
                    mode="async",
                )
        await _make_changes(sandbox, source, records, updates, prefix, lanes)
        await sandbox.notifier.drain()
        await asyncio.sleep(0.1)
    finally:
        await recorder.stop()
        sandbox.notifier.fno.clear()
    notes = sorted(recorder.notes, key=lambda n: n.seq)
    expected = records + updates
    if len(notes) != expected:
        raise RuntimeError(f"recorded {len(notes)} notifications for {expected} changes")
    return Recording(source, prefix, records, notes[:records], notes[records:])


async def _make_changes(
    sandbox: Any, source: Source, records: int, updates: int, prefix: str, lanes: int
) -> None:
    info = sandbox.info
    system = "dataverse" if source == "cds" else "fno"
    headers = {"Authorization": f"Bearer {sandbox.token('user', system)}"}
    company = await _company_id(sandbox) if source == "cds" else ""
    guids: dict[int, str] = {}
    connector = aiohttp.TCPConnector(ssl=client_ssl(info.ca_file), limit=0)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as http:

        async def write(record: int, seq: int, update: bool) -> None:
            key, value = f"{prefix}{record:05d}", value_text(seq, update)
            if source == "scm":
                if update:
                    url = f"{info.scm_url}/{SCM_SET}(dataAreaId='usmf',{SCM_KEY}='{key}')"
                    method, body = "PATCH", {SCM_FIELD: value}
                else:
                    url = f"{info.scm_url}/{SCM_SET}"
                    method, body = "POST", {"dataAreaId": "usmf", SCM_KEY: key, SCM_FIELD: value}
            elif update:
                url, method, body = f"{info.cds_url}/{CDS_SET}({guids[record]})", "PATCH", {CDS_FIELD: value}
            else:
                url, method = f"{info.cds_url}/{CDS_SET}", "POST"
                body = {
                    CDS_KEY: key,
                    CDS_FIELD: value,
                    "msdyn_company@odata.bind": f"/cdm_companies({company})",
                }
            async with http.request(method, url, json=body, headers=headers) as resp:
                if resp.status not in (201, 204):
                    raise RuntimeError(f"{method} {url}: {resp.status} {await resp.text()}")
                if source == "cds" and not update:
                    guids[record] = resp.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")

        async def lane(items: list[tuple[int, int, bool]]) -> None:
            for record, seq, update in items:
                await write(record, seq, update)

        for phase in (
            [(r, r, False) for r in range(records)],
            [(s % records, records + s, True) for s in range(updates)],
        ):
            by_lane: list[list[tuple[int, int, bool]]] = [[] for _ in range(lanes)]
            for item in phase:
                by_lane[item[0] % lanes].append(item)
            await asyncio.gather(*(lane(items) for items in by_lane))


async def _company_id(sandbox: Any) -> str:
    rows = sandbox.dataverse.rows("cdm_companies")
    return str(next(r["cdm_companyid"] for r in rows if r["cdm_companycode"] == "USMF"))
