"""The aiohttp side shared by both OData engines: one catch-all route under the service root, body
size limit, principal check, and ``$batch`` execution (atomic change sets, ``Content-ID``/``$n``
references, ``Prefer: odata.continue-on-error``)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from bridge.sandbox.contracts import Principal
from bridge.sandbox.odata.ops import CallContext, OpRequest, OpResponse, Unit
from bridge.sandbox.odata.query import parse_prefer
from bridge.wire.batch import (
    BatchRequest,
    BatchResponse,
    BatchSyntaxError,
    ChangeSet,
    parse_batch,
    write_batch,
)

Dispatch = Callable[[OpRequest, CallContext, Unit | None], Awaitable[OpResponse]]
ErrorFactory = Callable[[int, str], OpResponse]  # (status, message) -> the dialect's error shape
Atomic = Callable[[Callable[[Unit], Awaitable[list[BatchResponse]]]], Awaitable[list[BatchResponse]]]


class _ChangeSetFailed(Exception):
    def __init__(self, response: BatchResponse) -> None:
        super().__init__(response.status)
        self.response = response


def to_web(resp: OpResponse) -> web.Response:
    return web.Response(status=resp.status, body=resp.body or None, headers=resp.headers)


def query_dict(query_string: str) -> dict[str, str]:
    return dict(parse_qsl(query_string, keep_blank_values=True))


@dataclass
class ODataHttp:
    """Serves ``root`` (e.g. "/api/data/v9.2/") with ``dispatch`` for each operation."""

    root: str
    dispatch: Dispatch
    error: ErrorFactory
    atomic: Atomic
    max_body_bytes: int = 8 * 1024 * 1024

    def routes(self) -> list[web.AbstractRouteDef]:
        return [web.route("*", self.root + "{tail:.*}", self.handle)]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        principal = request.get("principal")
        if not isinstance(principal, Principal):
            return to_web(self.error(401, "The caller is not authenticated: no valid bearer token was sent."))
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            return to_web(self._too_large())
        try:
            body = await request.read()  # cached: a middleware (faults) may have read it first
        except web.HTTPRequestEntityTooLarge:
            return to_web(self._too_large())
        if len(body) > self.max_body_bytes:
            return to_web(self._too_large())
        raw_path = request.rel_url.raw_path
        tail = raw_path[len(self.root) :] if raw_path.startswith(self.root) else ""
        headers = {k.lower(): v for k, v in request.headers.items()}
        base = f"{request.scheme}://{request.host}{self.root}"
        correlation = headers.get("x-ms-correlation-request-id") or str(uuid.uuid4())
        ctx = CallContext.for_request(principal, correlation, base, headers)
        if tail == "$batch":
            if request.method != "POST":
                return to_web(self.error(405, "The $batch resource only accepts POST."))
            resp = await self.batch(body, headers.get("content-type", ""), ctx)
        else:
            op = OpRequest(request.method, tail, query_dict(request.rel_url.raw_query_string), headers, body)
            resp = await self.dispatch(op, ctx, None)
        return to_web(resp)

    def _too_large(self) -> OpResponse:
        return self.error(
            413, f"The request body exceeds the maximum allowed size of {self.max_body_bytes} bytes."
        )

    # ------------------------------------------------------------------ $batch
    def _op(self, req: BatchRequest, ctx: CallContext, ids: dict[str, str]) -> OpRequest | OpResponse:
        url = req.url
        if url.startswith("$"):
            ref, sep, rest = url[1:].partition("/")
            if ref not in ids:
                return self.error(400, f"Content-ID Reference: '${ref}' does not exist in the batch context.")
            url = ids[ref] + sep + rest
        parts = urlsplit(url)
        path = parts.path
        if parts.scheme or path.startswith("/"):
            if not path.startswith(self.root):
                return self.error(404, f"The URL '{req.url}' is not under the service root {self.root}.")
            path = path[len(self.root) :]
        return OpRequest(req.method, path, query_dict(parts.query), req.headers, req.body)

    async def batch(self, body: bytes, content_type: str, ctx: CallContext) -> OpResponse:
        try:
            parts = parse_batch(body, content_type)
        except BatchSyntaxError as exc:
            return self.error(400, str(exc))
        continue_on_error = "odata.continue-on-error" in ctx.prefer
        results: list[BatchResponse | list[BatchResponse]] = []
        failed: BatchResponse | None = None
        for part in parts:
            if isinstance(part, ChangeSet):
                try:
                    results.append(await self.atomic(self._changeset_body(part, ctx)))
                except _ChangeSetFailed as exc:
                    failed = exc.response
                    results.append(exc.response)
            else:
                op = self._op(part, ctx, {})
                if isinstance(op, OpRequest):
                    op_ctx = replace(ctx, prefer=_op_prefer(part))
                    op = await self.dispatch(op, op_ctx, None)
                resp = BatchResponse(op.status, op.headers, op.body, part.content_id)
                results.append(resp)
                failed = resp if resp.status >= 400 else None
            if failed is not None and not continue_on_error:
                break
        content_type_out, payload = write_batch(results)
        status = failed.status if failed is not None and not continue_on_error else 200
        return OpResponse(status, {"Content-Type": content_type_out, "OData-Version": "4.0"}, payload)

    def _changeset_body(
        self, changeset: ChangeSet, ctx: CallContext
    ) -> Callable[[Unit], Awaitable[list[BatchResponse]]]:
        async def run(unit: Unit) -> list[BatchResponse]:
            ids: dict[str, str] = {}
            out: list[BatchResponse] = []
            for req in changeset.requests:
                op = self._op(req, ctx, ids)
                if isinstance(op, OpRequest):
                    op_ctx = replace(ctx, prefer=_op_prefer(req), content_ids=ids)
                    op = await self.dispatch(op, op_ctx, unit)
                resp = BatchResponse(op.status, op.headers, op.body, req.content_id)
                if op.status >= 400:
                    raise _ChangeSetFailed(resp)
                if req.content_id:
                    location = op.headers.get("OData-EntityId") or op.headers.get("Location")
                    if location:
                        ids[req.content_id] = location
                out.append(resp)
            return out

        return run


def _op_prefer(req: BatchRequest) -> dict[str, str | None]:
    """An operation in a batch follows its own ``Prefer`` header, not the batch's."""
    return parse_prefer(req.headers.get("prefer"))
