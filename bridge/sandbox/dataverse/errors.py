"""Dataverse Web API errors: ``{"error": {"code": "0x…", "message": …}}`` with the real codes."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from bridge.sandbox.odata.ops import JSON_TYPE, OpResponse
from bridge.sandbox.rules import Rule, Violation
from bridge.sandbox.schema import DATAVERSE_REGISTRATION_TABLES, DATAVERSE_TABLES

DUPLICATE = "0x80040237"  # DuplicateRecord: a record with matching key values already exists
NOT_FOUND = "0x80040217"  # ObjectDoesNotExist
VALIDATION = "0x80044331"  # validation failed (string length etc.)
INT_RANGE = "0x8004432f"  # integer outside the column's MinValue/MaxValue
DECIMAL_RANGE = "0x80044330"  # decimal/money outside the column's range
BAD_OPTION = "0x8004431a"  # option set value not defined
PAYLOAD = "0x80048d19"  # error identified in the payload (bad JSON, unknown property, wrong type)
ODATA = "0x80060888"  # OData URL/query errors (unknown property in $select/$filter, bad key, bad segment)
PRIVILEGE = "0x80040220"  # principal is missing a privilege
CONCURRENCY = "0x80060882"  # If-Match row version mismatch
UNEXPECTED = "0x80040216"
UNAUTHORIZED = "0x80072560"


class DvError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> OpResponse:
        return OpResponse.json(self.status, {"error": {"code": self.code, "message": self.message}})


def dataverse_error(status: int, code: str, message: str) -> web.Response:
    """The real Dataverse Web API error body as an aiohttp response."""
    body = json.dumps({"error": {"code": code, "message": message}})
    return web.Response(
        status=status, body=body.encode(), headers={"Content-Type": JSON_TYPE, "OData-Version": "4.0"}
    )


def payload_error(entity: str, inner: str) -> DvError:
    return DvError(
        400,
        PAYLOAD,
        f"Error identified in Payload provided by the user for Entity :'{entity}', For more information on "
        f"this error please follow this help link https://go.microsoft.com/fwlink/?linkid=2195293  ---->  "
        f"InnerException : Microsoft.OData.ODataException: {inner}",
    )


def _show(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def violation_error(entity: str, v: Violation) -> DvError:
    """Render the first violation of a write the way Dataverse words it."""
    col = v.column
    if v.rule is Rule.UNKNOWN:
        return payload_error(
            entity,
            f"The property '{col}' does not exist on type 'Microsoft.Dynamics.CRM.{entity}'. Make sure to "
            "only use property names that are defined by the type or mark the type as open type.",
        )
    if v.rule is Rule.TYPE:
        return payload_error(
            entity, f"Cannot convert the literal '{_show(v.value)}' to the expected type '{v.expected}'."
        )
    if v.rule is Rule.MAX_LENGTH:
        return DvError(
            400,
            VALIDATION,
            f"A validation error occurred.  The length of the '{col}' attribute of the '{entity}' entity "
            f"exceeded the maximum allowed length of '{v.limit}'.",
        )
    if v.rule is Rule.RANGE:
        lo, hi = v.limit
        code = (
            DECIMAL_RANGE if isinstance(v.value, float) or (lo is not None and lo != int(lo)) else INT_RANGE
        )
        return DvError(
            400,
            code,
            f"A validation error occurred.  The value {v.value} of '{col}' on record of type '{entity}' is "
            f"outside the valid range. Accepted range: {_num(lo)} to {_num(hi)}",
        )
    if v.rule is Rule.OPTION:
        return DvError(
            400,
            BAD_OPTION,
            f"A validation error occurred.  The value {v.value} of '{col}' is not a valid option "
            f"for the '{entity}' entity. Valid options: {v.expected}.",
        )
    if v.rule is Rule.REQUIRED:
        return DvError(
            400,
            VALIDATION,
            f"A validation error occurred.  The value for the required attribute '{col}' "
            f"of the '{entity}' entity is missing or empty.",
        )
    if v.rule is Rule.READ_ONLY:
        return DvError(
            400,
            VALIDATION,
            f"A validation error occurred.  The attribute '{col}' of the "
            f"'{entity}' entity is read-only and cannot be set.",
        )
    if v.rule is Rule.IMMUTABLE:
        return DvError(
            400,
            VALIDATION,
            f"A validation error occurred.  The attribute '{col}' of the "
            f"'{entity}' entity cannot be changed after the record is created.",
        )
    if v.rule is Rule.DUPLICATE:
        return DvError(412, DUPLICATE, "A record with matching key values already exists.")
    target = v.target.removesuffix("s") if v.target.endswith("s") else v.target
    return DvError(404, NOT_FOUND, f"{_logical_of(v.target, target)} With Id = {v.value} Does Not Exist")


def _logical_of(entity_set: str, fallback: str) -> str:
    for t in (*DATAVERSE_TABLES, *DATAVERSE_REGISTRATION_TABLES):
        if t.entity_set == entity_set:
            return t.logical_name
    return fallback


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    return str(int(x)) if float(x).is_integer() else str(x)


def not_found(entity: str, record_id: str) -> DvError:
    return DvError(404, NOT_FOUND, f"{entity} With Id = {record_id} Does Not Exist")
