"""The failures' life cycle in the operations API: discard a failure (an admin decided nothing is to
be done). Listing (filtered by state) and retry are in ``bridge.ops.api``; both record who acted."""

from __future__ import annotations

from aiohttp import web

from bridge.engine.ports import Controller
from bridge.ops import models as m
from bridge.ops.actor import actor_of
from bridge.ops.apikit import ApiError, ok
from bridge.ops.openapi import RouteSpec
from bridge.state.base import FailureState


def failure_id_of(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit():
        raise ApiError(400, "bad_request", f"failure id must be a positive integer, not {raw!r}")
    return int(raw)


def failure_specs(controller: Controller) -> list[RouteSpec]:
    async def discard_failure(request: web.Request) -> web.Response:
        failure_id = failure_id_of(request)
        if not await controller.discard_failure(failure_id, actor=actor_of(request)):
            raise ApiError(
                404, "not_found", f"failure {failure_id} does not exist or is resolved or discarded"
            )
        return ok(m.DiscardResult(id=failure_id, state=FailureState.DISCARDED))

    return [
        RouteSpec(
            "POST",
            "/api/failures/{id}/discard",
            discard_failure,
            "Discard an open or retrying failure (nothing more to do); records who did",
            m.DiscardResult,
            tag="failures",
            errors={404: "No such failure, or it is resolved or discarded already"},
        )
    ]
