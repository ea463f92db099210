"""aiohttp handlers: ``POST /webhooks/cds`` (Dataverse webhooks) and ``POST /webhooks/scm`` (F&O data
events).

Order of checks, each answering before anything is submitted:
401 bad/missing credential (nothing of the body read; the connection is closed) -> 415 a
Content-Encoding other than gzip/deflate -> 413 body over ``max_body_bytes``, compressed or once
decompressed (bridge/listeners/body.py) -> 400 not JSON / wrong shape or types
(the message names the locations) -> 200 unmapped entity (acknowledged, counted, logged: a 4xx would
roll back an unrelated save on a synchronous step) -> the ``EventSink``'s answer (202 durable, 200
applied, 5xx failures). Dataverse reads only the status code; the JSON body is for people and logs.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from bridge.core.docmap import DocumentMap
from bridge.core.errors import PayloadError, RejectedError, SyncError
from bridge.core.events import ChangeEvent, Operation, SyncMode
from bridge.engine.ports import EventSink, SinkResult
from bridge.listeners.auth import SharedKeyAuth
from bridge.listeners.body import (
    SERVER_HANDLER_ARGS,
    BodyNotDecodable,
    BodyTooLarge,
    EncodingNotSupported,
    read_body,
)
from bridge.listeners.cds import CdsChange, parse_cds_notification
from bridge.listeners.docevents import document_event, line_of, parent_of
from bridge.listeners.scm import parse_scm_notification
from bridge.listeners.sink import CompanyDirectory, FetchCdsRecord
from bridge.listeners.values import MappingLookup

log = logging.getLogger(__name__)

MAX_PROBLEMS = 10  # a refusal names this many problems, then counts the rest
MAX_PROBLEM_CHARS = 300
DEFAULT_MAX_BODY = 1024 * 1024  # Dataverse strips bodies over 256 KB itself; F&O arrays can be larger
TRACE_HEADERS = ("traceparent", "tracestate")


def _json(status: int, payload: dict[str, Any]) -> web.Response:
    return web.json_response(payload, status=status)


def _error(status: int, code: str, message: str) -> web.Response:
    return _json(status, {"error": {"code": code, "message": message}})


def _closing(response: web.Response) -> web.Response:
    """Answer with ``Connection: close``: the unread rest of the body is neither read nor kept."""
    response.force_close()
    return response


def bounded(message: str) -> str:
    """A refusal's message as answered and logged: the first ``MAX_PROBLEMS`` of its '; '-separated
    problems, each at most ``MAX_PROBLEM_CHARS`` long (a sender's value is echoed in some), then a count."""
    problems = message.split("; ")
    shown = [
        p if len(p) <= MAX_PROBLEM_CHARS else p[:MAX_PROBLEM_CHARS] + "..." for p in problems[:MAX_PROBLEMS]
    ]
    more = len(problems) - len(shown)
    return "; ".join(shown) + (f"; and {more} more problem{'s' if more > 1 else ''}" if more else "")


class WebhookListener:
    """Both webhook endpoints; ``stats`` counts outcomes per endpoint (e.g. ``cds.unmapped``)."""

    def __init__(
        self,
        *,
        mappings: MappingLookup,
        sink: EventSink,
        cds_auth: SharedKeyAuth,
        scm_auth: SharedKeyAuth,
        companies: CompanyDirectory,
        fetch_cds_record: FetchCdsRecord,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        on_ignored: Callable[[str], None] | None = None,
    ) -> None:
        self.mappings = mappings
        self.sink = sink
        self.cds_auth = cds_auth
        self.scm_auth = scm_auth
        self.companies = companies
        self.fetch_cds_record = fetch_cds_record
        self.max_body_bytes = max_body_bytes
        self.stats: Counter[str] = Counter()
        self.on_ignored = on_ignored  # told the table of each notification no map covers (metrics)

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/webhooks/cds", self.handle_cds), web.post("/webhooks/scm", self.handle_scm)]

    def add_to(self, app: web.Application) -> None:
        app.add_routes(self.routes())

    # ---------------------------------------------------------------- shared steps
    async def _read_json(self, request: web.Request, auth: SharedKeyAuth) -> Any:
        """Authenticate, then read (and only then decompress) at most ``max_body_bytes``, then parse
        JSON. Raises a ready ``web.Response`` as ``_Answer``."""
        try:
            auth.check(request.headers, request.query)
        except PayloadError as exc:
            raise _Answer(_closing(_error(401, "unauthorized", str(exc))), "unauthorized") from None
        try:
            body = await read_body(request, self.max_body_bytes)
        except BodyTooLarge as exc:
            raise _Answer(_closing(_error(413, "too_large", str(exc))), "too_large") from None
        except EncodingNotSupported as exc:
            raise _Answer(_closing(_error(415, "unsupported_encoding", str(exc))), "bad_request") from None
        except BodyNotDecodable as exc:
            raise _Answer(_error(400, "bad_request", str(exc)), "bad_request") from None
        try:
            # orjson: strict RFC 8259 (UTF-8 only, no NaN, no lone surrogates; nesting up to 1,024
            # deep), anything else a 400 here; twice as fast as json on a Dataverse body.
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise _Answer(_error(400, "bad_request", f"<body>: not JSON: {exc}"), "bad_request") from None

    async def _guarded(
        self, system: str, request: web.Request, run: Callable[[web.Request], Awaitable[web.Response]]
    ) -> web.Response:
        self.stats[f"{system}.received"] += 1
        try:
            return await run(request)
        except _Answer as answer:
            self.stats[f"{system}.{answer.outcome}"] += 1
            if answer.response.status >= 400:
                log.warning("%s webhook: %s %s", system, answer.response.status, answer.response.text)
            return answer.response
        except PayloadError as exc:
            self.stats[f"{system}.bad_request"] += 1
            message = bounded(str(exc))
            log.warning("%s webhook: 400 %s", system, message)
            return _error(400, "bad_request", message)

    async def _submit_all(self, system: str, events: list[ChangeEvent]) -> web.Response:
        """Submit in body order; stop at the first failure (later events of a record must not pass it)."""
        results: list[SinkResult] = []
        for event in events:
            try:
                result = await self.sink.submit(event)
            except Exception as exc:  # the bridge keeps serving whatever the sink does
                log.exception("%s webhook: submitting %s failed", system, event.event_id)
                result = SinkResult(False, 503, f"could not accept the event: {exc}")
            if not result.accepted:
                self.stats[f"{system}.failed"] += 1
                return _json(result.status, {"accepted": len(results), "error": {"message": result.message}})
            results.append(result)
        self.stats[f"{system}.accepted"] += len(results)
        status = max((r.status for r in results), default=200)
        messages = [r.message for r in results if r.message]
        return _json(status, {"accepted": len(results), "message": "; ".join(messages)})

    # ---------------------------------------------------------------- Dataverse
    async def handle_cds(self, request: web.Request) -> web.Response:
        return await self._guarded("cds", request, self._cds)

    async def _cds(self, request: web.Request) -> web.Response:
        body = await self._read_json(request, self.cds_auth)
        trace = {h: request.headers[h] for h in TRACE_HEADERS if h in request.headers}
        change = parse_cds_notification(body, request.headers, self.mappings, trace_context=trace)
        if change is None:
            return self._unmapped("cds", body)
        if isinstance(change.emap, DocumentMap):
            return await self._document("cds", change, str(body.get("PrimaryEntityName", "")))
        event = await self._complete(change)
        if event is None:
            return self._ignored("cds", "the record has no company: only rows with a company sync")
        return await self._submit_all("cds", [event])

    async def _complete(self, change: CdsChange) -> ChangeEvent | None:
        """Company code and, where the payload lacks them, key and company read from Dataverse."""
        try:
            if change.incomplete:
                row = await self.fetch_cds_record(change.entity_set, change.record_id)
                if row is None and change.mode is SyncMode.SYNC and change.operation is not Operation.DELETE:
                    # Inside a synchronous step the new row is not committed, so it cannot be read from
                    # outside: let the save commit and apply the change after it (asynchronously).
                    return change.to_deferred_event()
                if row is None and (change.key is None or not (change.company_id or change.company_seen)):
                    raise PayloadError(
                        f"{change.emap.cds.logical_name} {change.record_id}: the payload has no "
                        f"{change.emap.cds.key_field}/company and the record cannot be read"
                    )
                if row is not None:
                    change = change.with_row(row)
            if change.company_id is None:
                return None
            code = await self.companies.code_for_cds_company(change.company_id)
        except SyncError as exc:
            status = 502 if isinstance(exc, RejectedError) else 503
            raise _Answer(
                _error(status, "lookup_failed", f"reading from Dataverse failed: {exc}"), "failed"
            ) from exc
        if code is None:
            raise PayloadError(f"company {change.company_id} is not a known cdm_company")
        return change.to_event(code)

    async def _document(self, system: str, change: CdsChange, table: str) -> web.Response:
        """A save of a document's header or line: keyed by the header's id (bridge.listeners.docevents)."""
        dmap = change.emap
        assert isinstance(dmap, DocumentMap)
        line = line_of(dmap, table)
        if line is None:
            return await self._submit_all(system, [document_event(change, dmap, change.record_id)])
        header_id = parent_of(line, change.changed, change.image, change.pre_image)
        if header_id is None:
            try:
                row = await self.fetch_cds_record(line.cds.entity_set, change.record_id)
            except SyncError as exc:
                return _error(503, "lookup_failed", f"reading from Dataverse failed: {exc}")
            header_id = parent_of(line, row)
        if header_id is None:
            return self._ignored(system, f"{table} {change.record_id}: no {line.cds.parent} (its header)")
        return await self._submit_all(system, [document_event(change, dmap, header_id)])

    # ---------------------------------------------------------------- F&O
    async def handle_scm(self, request: web.Request) -> web.Response:
        return await self._guarded("scm", request, self._scm)

    async def _scm(self, request: web.Request) -> web.Response:
        body = await self._read_json(request, self.scm_auth)
        parsed = parse_scm_notification(body, self.mappings)
        events = [e for e in parsed if e is not None]
        if len(events) < len(parsed):
            self.stats["scm.unmapped"] += len(parsed) - len(events)
            items = body if isinstance(body, list) else [body]
            for item, event in zip(items, parsed, strict=True):
                if event is None and self.on_ignored is not None:
                    self.on_ignored(str(item.get("PrimaryEntityName") or "?"))
            log.info("scm webhook: %d event(s) of unmapped entities ignored", len(parsed) - len(events))
        if not events:
            return _json(200, {"accepted": 0, "ignored": len(parsed), "message": "no mapped entity"})
        trace = {h: request.headers[h] for h in TRACE_HEADERS if h in request.headers}
        if trace:
            events = [e.model_copy(update={"trace_context": trace}) for e in events]
        return await self._submit_all("scm", events)

    # ---------------------------------------------------------------- ignored
    def _unmapped(self, system: str, body: Any) -> web.Response:
        name = body.get("PrimaryEntityName") if isinstance(body, dict) else None
        message = body.get("MessageName") if isinstance(body, dict) else None
        log.info("%s webhook: %s of %s ignored: no map", system, message, name)
        self.stats[f"{system}.unmapped"] += 1
        if self.on_ignored is not None:
            self.on_ignored(str(name or "?"))
        return _json(200, {"accepted": 0, "ignored": 1, "message": f"no map for {name} {message}"})

    def _ignored(self, system: str, why: str) -> web.Response:
        log.info("%s webhook: ignored: %s", system, why)
        self.stats[f"{system}.ignored"] += 1
        return _json(200, {"accepted": 0, "ignored": 1, "message": why})


class _Answer(Exception):
    """An early answer (auth, size, JSON) carried out of the shared steps."""

    def __init__(self, response: web.Response, outcome: str) -> None:
        super().__init__(outcome)
        self.response = response
        self.outcome = outcome


def create_app(listener: WebhookListener) -> web.Application:
    """A standalone app with both endpoints (the lead's app adds ``listener.routes()`` to its own)."""
    # aiohttp's own cap sits above ours so our 413 (with its JSON message) answers first.
    app = web.Application(client_max_size=listener.max_body_bytes + 1024, handler_args=SERVER_HANDLER_ARGS)
    listener.add_to(app)
    return app
