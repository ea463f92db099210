"""The sandbox admin API under ``/_sandbox/`` on each emulator (not part of the emulated systems).

Authenticated by ``x-sandbox-admin-key``. Seeds, dumps and resets the data, sets and reads faults,
and shows the delivery (jobs) and write logs; on F&O it also manages data event endpoints.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web
from pydantic import ValidationError

from bridge.sandbox.faults import Faults, FaultSettings
from bridge.sandbox.notify.common import JobLog
from bridge.sandbox.notify.fno import DataEventEndpoint, FnoNotifier

ADMIN_HEADER = "x-sandbox-admin-key"
PREFIX = "/_sandbox"


class AdminTarget(Protocol):
    """What the admin API needs of an emulator service (DataverseService / FnoService)."""

    write_log: Any

    def seed(self, entity_set: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]: ...

    def dump(self) -> dict[str, list[dict[str, Any]]]: ...

    def reset(self) -> None: ...


class Clearable(Protocol):
    def clear(self) -> None: ...


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _jsonable(entry: Any) -> Any:
    if dataclasses.is_dataclass(entry) and not isinstance(entry, type):
        out = dataclasses.asdict(entry)
    elif hasattr(entry, "model_dump"):
        out = entry.model_dump(mode="json")
    elif isinstance(entry, dict):
        out = dict(entry)
    else:
        out = vars(entry)
    return json.loads(json.dumps(out, default=str))


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": {"code": "BadRequest", "message": f"Malformed JSON: {exc}"}}),
            content_type="application/json",
        ) from exc


class AdminApi:
    def __init__(
        self,
        *,
        key: str,
        service: AdminTarget,
        faults: Faults,
        jobs: JobLog,
        notifier: Clearable | None = None,
        dataevents: FnoNotifier | None = None,
    ) -> None:
        self.key = key
        self.service = service
        self.faults = faults
        self.jobs = jobs
        self.notifier = notifier
        self.dataevents = dataevents

    def add_to(self, app: web.Application) -> None:
        r = app.router
        guard = self._guarded
        r.add_get(f"{PREFIX}/", guard(self._index))
        r.add_post(f"{PREFIX}/seed", guard(self._seed))
        r.add_get(f"{PREFIX}/dump", guard(self._dump))
        r.add_post(f"{PREFIX}/reset", guard(self._reset))
        r.add_get(f"{PREFIX}/faults", guard(self._get_faults))
        r.add_put(f"{PREFIX}/faults", guard(self._put_faults))
        r.add_delete(f"{PREFIX}/faults", guard(self._delete_faults))
        r.add_get(f"{PREFIX}/faults/log", guard(self._fault_log))
        r.add_delete(f"{PREFIX}/faults/log", guard(self._clear_fault_log))
        r.add_get(f"{PREFIX}/jobs", guard(self._jobs))
        r.add_get(f"{PREFIX}/writes", guard(self._writes))
        if self.dataevents is not None:
            r.add_get(f"{PREFIX}/dataevents/endpoints", guard(self._list_endpoints))
            r.add_post(f"{PREFIX}/dataevents/endpoints", guard(self._add_endpoint))
            r.add_delete(f"{PREFIX}/dataevents/endpoints", guard(self._delete_endpoints))
            r.add_delete(f"{PREFIX}/dataevents/endpoints/{{id}}", guard(self._delete_endpoint))

    def _guarded(
        self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def checked(request: web.Request) -> web.StreamResponse:
            given = request.headers.get(ADMIN_HEADER, "")
            if not secrets.compare_digest(given.encode(), self.key.encode()):
                return _error(401, "Unauthorized", f"The {ADMIN_HEADER} header is missing or wrong.")
            return await handler(request)

        return checked

    # ------------------------------------------------------------------ data
    async def _index(self, request: web.Request) -> web.Response:
        routes = sorted(
            {
                f"{r.method} {r.resource.canonical}"
                for r in request.app.router.routes()
                if r.resource is not None and r.resource.canonical.startswith(PREFIX)
            }
        )
        return web.json_response({"system": self.faults.system, "routes": routes})

    async def _seed(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        if not isinstance(body, dict) or not all(isinstance(v, list) for v in body.values()):
            return _error(400, "BadRequest", 'Expected {"<entity set>": [rows], ...}.')
        created: dict[str, list[dict[str, Any]]] = {}
        for entity_set, rows in body.items():
            if not all(isinstance(row, dict) for row in rows):
                return _error(400, "BadRequest", f"Rows of {entity_set} must be JSON objects.")
            try:
                created[entity_set] = self.service.seed(entity_set, rows)
            except Exception as exc:  # the engine's own validation errors: report them, never a 500
                return _error(400, "SeedRejected", f"{entity_set}: {exc}")
        invalidate = getattr(self.notifier, "invalidate", None)
        if invalidate is not None:  # seeded registrations bypass the write log the notifier watches
            invalidate()
        return web.json_response(_jsonable(created))

    async def _dump(self, request: web.Request) -> web.Response:
        return web.json_response(_jsonable(self.service.dump()))

    async def _reset(self, request: web.Request) -> web.Response:
        """Data back to the defaults; logs, faults and data event endpoints cleared too."""
        self.service.reset()
        clear_log = getattr(self.service.write_log, "clear", None)
        if clear_log is not None:
            clear_log()
        self.faults.clear()
        self.faults.clear_log()
        self.jobs.clear()
        if self.notifier is not None:
            self.notifier.clear()
        if self.dataevents is not None:
            self.dataevents.clear()
        return web.Response(status=204)

    # ------------------------------------------------------------------ faults
    async def _get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.settings.model_dump())

    async def _put_faults(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            settings = FaultSettings.model_validate(body)
        except ValidationError as exc:
            return _error(400, "BadRequest", _validation_text(exc))
        self.faults.configure(settings)
        return web.json_response(self.faults.settings.model_dump())

    async def _delete_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return web.Response(status=204)

    async def _fault_log(self, request: web.Request) -> web.Response:
        return web.json_response([e.to_json() for e in self.faults.log])

    async def _clear_fault_log(self, request: web.Request) -> web.Response:
        self.faults.clear_log()
        return web.Response(status=204)

    # ------------------------------------------------------------------ logs
    async def _jobs(self, request: web.Request) -> web.Response:
        status = request.query.get("status")
        jobs = [j.to_json() for j in self.jobs if status is None or j.status == status]
        return web.json_response(jobs)

    async def _writes(self, request: web.Request) -> web.Response:
        return web.json_response([_jsonable(w) for w in list(self.service.write_log)])

    # ------------------------------------------------------------------ F&O data event endpoints
    async def _list_endpoints(self, request: web.Request) -> web.Response:
        assert self.dataevents is not None
        return web.json_response([e.model_dump() for e in self.dataevents.endpoints.values()])

    async def _add_endpoint(self, request: web.Request) -> web.Response:
        assert self.dataevents is not None
        body = await _json_body(request)
        try:
            endpoint = DataEventEndpoint.model_validate(body)
        except ValidationError as exc:
            return _error(400, "BadRequest", _validation_text(exc))
        self.dataevents.add_endpoint(endpoint)
        return web.json_response(endpoint.model_dump(), status=201)

    async def _delete_endpoints(self, request: web.Request) -> web.Response:
        assert self.dataevents is not None
        self.dataevents.endpoints.clear()
        return web.Response(status=204)

    async def _delete_endpoint(self, request: web.Request) -> web.Response:
        assert self.dataevents is not None
        if not self.dataevents.remove_endpoint(request.match_info["id"]):
            return _error(404, "NotFound", f"No data event endpoint {request.match_info['id']}.")
        return web.Response(status=204)


def _validation_text(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
