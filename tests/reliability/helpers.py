"""What the reliability scenarios share: a person writing to either system, a log of every commit on
each emulator in commit order (with the value written), and the checks of the guarantees."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bridge.sandbox.contracts import RecordChange, WriteHooks
from bridge.systems.odata import key_segment

CDS_SET, CDS_KEY, CDS_FIELD = "msdyn_shipvias", "msdyn_name", "msdyn_description"
SCM_SET, SCM_KEY, SCM_FIELD = "DeliveryModesV2", "ModeCode", "ModeDescription"


@dataclass(frozen=True, slots=True)
class Commit:
    key: str
    message: str
    value: str | None
    client_id: str


class CommitLog:
    """Wraps an emulator's ``WriteHooks``: records each committed change in commit order, then
    passes it on (so notifications still go out)."""

    def __init__(self, inner: WriteHooks, key_column: str, value_column: str) -> None:
        self.inner = inner
        self.key_column = key_column
        self.value_column = value_column
        self.commits: list[Commit] = []

    async def before_commit(self, change: RecordChange) -> None:
        await self.inner.before_commit(change)

    async def after_commit(self, change: RecordChange) -> None:
        row = change.post_image or change.pre_image or {}
        key = row.get(self.key_column)
        if key is not None:
            value = (change.post_image or {}).get(self.value_column)
            self.commits.append(Commit(str(key), change.message, value, change.principal.client_id))
        await self.inner.after_commit(change)

    def by(self, client_id: str) -> dict[str, list[Commit]]:
        out: dict[str, list[Commit]] = defaultdict(list)
        for commit in self.commits:
            if commit.client_id == client_id:
                out[commit.key].append(commit)
        return out


def attach_commit_logs(sandbox: Any) -> tuple[CommitLog, CommitLog]:
    """(Dataverse log, F&O log)."""
    cds = CommitLog(sandbox.dataverse.hooks, CDS_KEY, CDS_FIELD)
    scm = CommitLog(sandbox.fno.hooks, SCM_KEY, SCM_FIELD)
    sandbox.dataverse.hooks = cds
    sandbox.fno.hooks = scm
    return cds, scm


def seq_of(value: str | None) -> int:
    """Values are written as '<tag>-<seq>': the source order of the change that wrote them."""
    return int(str(value).rsplit("-", 1)[1])


@dataclass
class Person:
    """The sandbox's user client, writing ship vias on either system."""

    http: aiohttp.ClientSession
    sandbox: Any
    company_id: str = ""
    cds_ids: dict[str, str] = field(default_factory=dict)
    statuses: list[int] = field(default_factory=list)

    @classmethod
    async def make(cls, http: aiohttp.ClientSession, sandbox: Any) -> Person:
        rows = sandbox.dataverse.rows("cdm_companies")
        company = next(r["cdm_companyid"] for r in rows if r["cdm_companycode"] == "USMF")
        return cls(http, sandbox, company)

    def _headers(self, system: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.sandbox.token('user', system)}"}

    async def _send(self, method: str, url: str, body: Any, system: str) -> tuple[int, Any]:
        async with self.http.request(method, url, json=body, headers=self._headers(system)) as resp:
            text = await resp.text()
            self.statuses.append(resp.status)
            return resp.status, (resp.headers.get("OData-EntityId"), text)

    async def scm_create(self, key: str, value: str) -> int:
        url = f"{self.sandbox.info.scm_url}/{SCM_SET}"
        status, _ = await self._send(
            "POST", url, {"dataAreaId": "usmf", SCM_KEY: key, SCM_FIELD: value}, "fno"
        )
        return status

    async def scm_update(self, key: str, value: str) -> int:
        url = f"{self.sandbox.info.scm_url}/{SCM_SET}" + key_segment({"dataAreaId": "usmf", SCM_KEY: key})
        status, _ = await self._send("PATCH", url, {SCM_FIELD: value}, "fno")
        return status

    async def cds_create(self, key: str, value: str) -> int:
        body = {
            CDS_KEY: key,
            CDS_FIELD: value,
            "msdyn_company@odata.bind": f"/cdm_companies({self.company_id})",
        }
        status, (entity_id, _) = await self._send(
            "POST", f"{self.sandbox.info.cds_url}/{CDS_SET}", body, "dataverse"
        )
        if status == 204 and entity_id:
            self.cds_ids[key] = entity_id.rsplit("(", 1)[1].rstrip(")")
        return status

    async def cds_update(self, key: str, value: str) -> int:
        record_id = self.cds_ids.get(key) or self.cds_id(key)
        url = f"{self.sandbox.info.cds_url}/{CDS_SET}({record_id})"
        status, _ = await self._send("PATCH", url, {CDS_FIELD: value}, "dataverse")
        return status

    def cds_id(self, key: str) -> str:
        row = next(r for r in self.sandbox.dataverse.rows(CDS_SET) if r[CDS_KEY] == key)
        self.cds_ids[key] = str(row["msdyn_shipviaid"])
        return self.cds_ids[key]


def mapped_dump(sandbox: Any, system: str) -> dict[str, str | None]:
    """Natural key -> mapped field, for every ship via of one system (a full dump)."""
    if system == "cds":
        return {r[CDS_KEY]: r[CDS_FIELD] for r in sandbox.dataverse.rows(CDS_SET)}
    return {r[SCM_KEY]: r[SCM_FIELD] for r in sandbox.fno.rows(SCM_SET)}


async def converge(sandbox: Any, timeout: float = 60.0) -> dict[str, str | None]:
    """Wait until both systems hold the same mapped data; returns it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await sandbox.notifier.drain()
        cds, scm = mapped_dump(sandbox, "cds"), mapped_dump(sandbox, "scm")
        if cds == scm:
            return cds
        if asyncio.get_running_loop().time() > deadline:
            differ = {k: (cds.get(k), scm.get(k)) for k in set(cds) | set(scm) if cds.get(k) != scm.get(k)}
            raise AssertionError(
                f"{len(differ)} records differ (cds, scm): {dict(list(differ.items())[:10])}"
            )
        await asyncio.sleep(0.1)


async def stream(
    keys: list[str],
    updates: int,
    create: Callable[[str, str], Awaitable[int]] | None,
    update: Callable[[str, str], Awaitable[int]],
    *,
    lanes: int = 8,
    tag: str = "v",
    start: int = 0,
    rng: random.Random | None = None,
) -> dict[str, str]:
    """Create every record (unless ``create`` is None), then ``updates`` changes over them; each
    record's changes in order, records in parallel. Values are '<tag>-<seq>' with ``seq`` counting up
    from ``start`` in source order. Returns key -> last value."""
    rng = rng or random.Random(start)
    last: dict[str, str] = {}
    plan: list[list[tuple[str, str, bool]]] = [[] for _ in range(lanes)]
    seq = start
    for i, key in enumerate(keys if create is not None else []):
        plan[i % lanes].append((key, f"{tag}-{seq}", True))
        last[key] = f"{tag}-{seq}"
        seq += 1
    index = {key: i for i, key in enumerate(keys)}
    for _ in range(updates):
        key = rng.choice(keys)
        plan[index[key] % lanes].append((key, f"{tag}-{seq}", False))
        last[key] = f"{tag}-{seq}"
        seq += 1

    async def lane(items: list[tuple[str, str, bool]]) -> None:
        for key, value, is_create in items:
            write = create if is_create and create is not None else update
            status = await write(key, value)
            assert status in (201, 204), f"{key} {value}: {status}"

    await asyncio.gather(*(lane(items) for items in plan))
    return last


def assert_once_and_in_order(log: CommitLog, client_id: str, last: dict[str, str]) -> int:
    """Per record, the bridge's writes carry strictly increasing source sequence numbers (so no change
    was applied twice and none overtook an older one), exactly one create, and end with the newest
    value. Returns the number of bridge writes."""
    writes = log.by(client_id)
    total = 0
    for key, newest in last.items():
        commits = writes.get(key, [])
        assert commits, f"{key}: never written by the bridge"
        assert [c.message for c in commits].count("Create") == 1, f"{key}: {commits}"
        seqs = [seq_of(c.value) for c in commits]
        assert seqs == sorted(set(seqs)), f"{key}: applied out of order or twice: {seqs}"
        assert commits[-1].value == newest, f"{key}: ends with {commits[-1].value}, newest is {newest}"
        total += len(commits)
    return total
