"""F&O OData errors: ``{"error": {"code": "", "message": "An error has occurred.", "innererror": {…}}}``
with the useful text in ``innererror.message``, as the real service answers."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from bridge.sandbox.odata.ops import JSON_TYPE, OpResponse
from bridge.sandbox.rules import Rule, Violation

WRITE_EXCEPTION = "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException"
ODATA_EXCEPTION = "Microsoft.OData.ODataException"
NOT_FOUND_EXCEPTION = "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataObjectNotFoundException"
ENTITY_NS = "Microsoft.Dynamics.DataEntities"


def _payload(message: str, error_type: str) -> dict[str, Any]:
    return {
        "error": {
            "code": "",
            "message": "An error has occurred.",
            "innererror": {"message": message, "type": error_type, "stacktrace": ""},
        }
    }


class FnoError(Exception):
    def __init__(self, status: int, message: str, error_type: str = WRITE_EXCEPTION) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type

    def response(self) -> OpResponse:
        return OpResponse.json(self.status, _payload(self.message, self.error_type))


def fno_error(status: int, message: str, *, error_type: str = WRITE_EXCEPTION) -> web.Response:
    """The real F&O OData error body as an aiohttp response."""
    body = json.dumps(_payload(message, error_type)).encode()
    return web.Response(status=status, body=body, headers={"Content-Type": JSON_TYPE, "OData-Version": "4.0"})


def violation_error(entity: str, label: str, v: Violation) -> FnoError:
    """Render a violation the way F&O's infolog words it. ``label`` names the entity set for messages."""
    col, value = v.column, v.value
    head = f"Write failed for table row of type '{entity}'. Infolog: Error: "
    if v.rule is Rule.UNKNOWN:
        return FnoError(
            400,
            f"The property '{col}' does not exist on type '{ENTITY_NS}.{entity}'. Make sure to only use "
            "property names that are defined by the type.",
            ODATA_EXCEPTION,
        )
    if v.rule is Rule.TYPE:
        shown = "null" if value is None else json.dumps(value)
        return FnoError(
            400,
            f"Cannot convert the literal {shown} of field '{col}' to the expected type '{v.expected}'.",
            ODATA_EXCEPTION,
        )
    if v.rule is Rule.MAX_LENGTH:
        return FnoError(
            400,
            f"{head}The value '{value}' of field '{col}' is {len(str(value))} characters long and exceeds "
            f"the maximum length {v.limit}.",
        )
    if v.rule is Rule.RANGE:
        lo, hi = v.limit
        return FnoError(400, f"{head}The value {value} of field '{col}' is outside the range {lo} to {hi}.")
    if v.rule is Rule.OPTION:
        return FnoError(
            400,
            f"Requested value '{value}' was not found for enum field '{col}'. Valid values: {v.expected}.",
            ODATA_EXCEPTION,
        )
    if v.rule is Rule.REQUIRED:
        return FnoError(400, f"{head}Field '{col}' must be filled in.")
    if v.rule in (Rule.READ_ONLY, Rule.IMMUTABLE):
        why = "read-only" if v.rule is Rule.READ_ONLY else "part of the key or the company"
        return FnoError(400, f"{head}Field '{col}' cannot be changed: it is {why}.")
    if v.rule is Rule.DUPLICATE:
        keys = ", ".join(str(x) for x in (value or {}).values())
        # Reported by integrators: F&O answers a duplicate key on create with 500, not 4xx.
        return FnoError(
            500, f"Cannot create a record in {label} ({entity}). {entity}: {keys}. The record already exists."
        )
    return FnoError(
        400, f"{head}The value '{value}' in field '{col}' is not found in the related table '{v.target}'."
    )
