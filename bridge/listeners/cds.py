"""Dataverse webhook body (``RemoteExecutionContext``) -> ``CdsChange`` -> ``ChangeEvent`` (pure).

Values are normalised to the Dataverse Web API read form, the form ``bridge.core.mapping`` reads:
OptionSetValue -> int, Money -> number, EntityReference -> ``_<col>_value`` GUID (lower case),
"/Date(ms)/" -> "YYYY-MM-DDTHH:MM:SSZ" (date-only columns are reshaped by the mapping's date map).

Parsing stops short of a ``ChangeEvent`` because two facts may need I/O: the company code (the
payload has only the ``cdm_company`` GUID) and, for the over-256 KB variant or a registration without
images, the key and company themselves. ``CdsChange.to_event`` takes them in once resolved.

Event id: ``"cds:" + RequestId``. RequestId names the operation in both modes and is repeated when
Dataverse re-sends the same notification (502/503/504, async job retries); OperationId is the async
system job's id (empty for synchronous steps), so it is only the fallback.
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from bridge.core.errors import PayloadError
from bridge.core.events import (
    DEFERRED_COMPANY,
    DEFERRED_KEY_PREFIX,
    ChangeEvent,
    Operation,
    SyncMode,
    System,
    utcnow,
)
from bridge.core.mapping import EntityMap
from bridge.listeners.values import MappingLookup, is_empty_guid, parse_timestamp, wcf_iso
from bridge.listeners.wire import Context, WireEntity, WireReference, validate

SIZE_EXCEEDED_HEADER = "x-ms-dynamics-msg-size-exceeded"
CORRELATION_HEADER = "x-ms-correlation-request-id"
MESSAGES = {"Create": Operation.CREATE, "Update": Operation.UPDATE, "Delete": Operation.DELETE}
MODES = {0: SyncMode.SYNC, 1: SyncMode.ASYNC}
# Columns every row carries that say who/when, not what: never part of ``changed``.
SYSTEM_COLUMNS = frozenset(
    {
        "modifiedon",
        "_modifiedby_value",
        "_modifiedonbehalfby_value",
        "versionnumber",
        "createdon",
        "_createdby_value",
        "_createdonbehalfby_value",
    }
)
ALWAYS_LOOKUPS = frozenset({"modifiedby", "createdby", "modifiedonbehalfby", "createdonbehalfby", "ownerid"})
# The form Dataverse sends every GUID in; such text needs no uuid.UUID round trip, only lower case.
_CANONICAL_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NUMBER = (int, float)


@dataclass(frozen=True, slots=True)
class CdsChange:
    """A parsed notification of a mapped table, before company/key resolution."""

    emap: EntityMap
    operation: Operation
    mode: SyncMode
    record_id: str
    event_id: str
    company_id: str | None  # cdm_company GUID, when the payload carries it
    company_seen: bool  # the payload carried the company column (so None means "no company")
    key: str | None  # natural key, when the payload carries it
    changed: dict[str, Any]
    image: dict[str, Any] | None
    pre_image: dict[str, Any] | None
    needs_fetch: bool
    source_timestamp: datetime
    initiated_by: str | None
    correlation_id: str | None
    trace_context: dict[str, str] = field(default_factory=dict)

    @property
    def entity_set(self) -> str:
        return self.emap.cds.entity_set

    def with_row(self, row: Mapping[str, Any]) -> CdsChange:
        """Fill key/company and a missing image from the row as read back (at receipt, so possibly
        newer than this change: syncing the newest state is what the engine would do anyway)."""
        cds = self.emap.cds
        company = self.company_id or _guid_or_none(row.get(cds.company_read))
        key = self.key if self.key is not None else _key_or_none(row.get(cds.key_field))
        image = self.image
        if image is None and self.operation is not Operation.DELETE:
            image = dict(row)
        seen = self.company_seen or cds.company_read in row
        return replace(self, company_id=company, company_seen=seen, key=key, image=image)

    @property
    def incomplete(self) -> bool:
        """Key or company unknown from the payload, or no columns at all: read the row."""
        missing_company = self.company_id is None and not self.company_seen
        return self.key is None or missing_company or (self.needs_fetch and self.image is None)

    def to_deferred_event(self) -> ChangeEvent:
        """The record cannot be read yet (its transaction is still open): apply it after commit,
        asynchronously, addressed by its row id until the engine reads its key."""
        return ChangeEvent(
            event_id=self.event_id,
            source=System.CDS,
            entity=self.emap.name,
            company=DEFERRED_COMPANY,
            key=DEFERRED_KEY_PREFIX + self.record_id,
            operation=self.operation,
            mode=SyncMode.ASYNC,
            record_id=self.record_id,
            changed=self.changed,
            needs_fetch=True,
            source_timestamp=self.source_timestamp,
            initiated_by=self.initiated_by,
            correlation_id=self.correlation_id,
            trace_context=self.trace_context,
        )

    def to_event(self, company_code: str) -> ChangeEvent:
        if self.key is None:
            raise PayloadError(f"{self.emap.cds.logical_name} {self.record_id}: no {self.emap.cds.key_field}")
        return ChangeEvent(
            event_id=self.event_id,
            source=System.CDS,
            entity=self.emap.name,
            company=company_code.upper(),
            key=self.key,
            operation=self.operation,
            mode=self.mode,
            record_id=self.record_id,
            changed=self.changed,
            image=self.image,
            pre_image=self.pre_image,
            needs_fetch=self.needs_fetch,
            source_timestamp=self.source_timestamp,
            initiated_by=self.initiated_by,
            correlation_id=self.correlation_id,
            trace_context=self.trace_context,
        )


def lookup_columns(emap: EntityMap) -> frozenset[str]:
    """Logical names of the map's Dataverse lookups (a cleared lookup arrives as a bare null)."""
    return (
        frozenset({f.cds for f in emap.fields if f.lookup is not None} | {emap.cds.company_field})
        | ALWAYS_LOOKUPS
    )


def normalise_attributes(attrs: Mapping[str, Any], lookups: Collection[str], where: str) -> dict[str, Any]:
    """Serialised SDK attribute values -> Web API read form (see module docstring)."""
    # Every webhook runs this over three images: locations are only spelled out for an error.
    out: dict[str, Any] = {}
    for name, value in attrs.items():
        if isinstance(value, str):  # the commonest case first
            iso = wcf_iso(value)
            out[name] = value if iso is None else iso
        elif isinstance(value, dict) and isinstance(value.get("__type"), str):
            kind = value["__type"].partition(":")[0]
            if kind == "EntityReference":
                out[f"_{name}_value"] = _guid(value.get("Id"), where, name, "Id")
            elif kind == "OptionSetValue":
                out[name] = _typed(value.get("Value"), int, where, name, "an integer")
            elif kind == "Money":
                out[name] = _typed(value.get("Value"), _NUMBER, where, name, "a number")
            else:
                out[name] = value  # a type no mapping uses: keep it as sent
        elif value is None and name in lookups:
            out[f"_{name}_value"] = None
        else:
            out[name] = value
    return out


def _typed(value: Any, kind: Any, where: str, name: str, what: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, kind):
        raise PayloadError(f"{where}.{name}.Value: should be {what}, got {value!r}")
    return value


# The same few GUIDs (company, user, the record) recur in every image of every webhook. Only
# 36-character strings are remembered, so a body cannot fill the cache with large keys.
@functools.lru_cache(maxsize=4096)
def _canonical_guid(value: str) -> str | None:
    return value.lower() if _CANONICAL_GUID.fullmatch(value) else None


def _guid(value: Any, *where: str) -> str:
    """A GUID in canonical lower-case form (what ``str(uuid.UUID(...))`` gives). ``where`` names the
    value for an error, in parts joined with dots only then."""
    if isinstance(value, str) and len(value) == 36:
        canonical = _canonical_guid(value)
        if canonical is not None:
            return canonical
    try:  # the other spellings uuid.UUID accepts: braces, no hyphens, "urn:uuid:"
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise PayloadError(f"{'.'.join(where)}: not a GUID: {value!r}") from None


def _guid_or_none(value: Any) -> str | None:
    """``_guid`` for values that may be absent or not a GUID: None instead of a 400."""
    if not value:
        return None
    try:
        return _guid(value, "")
    except PayloadError:
        return None


def _header_values(headers: Mapping[str, str], name: str) -> list[str]:
    """Every value of header ``name`` (given in lower case), matched case-insensitively, in order."""
    if isinstance(headers, CIMultiDictProxy | CIMultiDict):
        # aiohttp's request headers look up case-insensitively themselves: no need to lower each name.
        return headers.getall(name, [])
    return [value for key, value in headers.items() if key.lower() == name]


def _key_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _event_id(ctx: Context) -> str:
    for candidate in (ctx.RequestId, ctx.OperationId):
        if not is_empty_guid(candidate):
            return f"cds:{str(candidate).lower()}"
    # Neither given: derive a stable id from what identifies this operation, so repeats still dedupe.
    basis = "|".join(
        str(x) for x in (ctx.CorrelationId, ctx.MessageName, ctx.PrimaryEntityId, ctx.OperationCreatedOn)
    )
    return "cds:h:" + hashlib.sha256(basis.encode()).hexdigest()[:32]


def _entity(value: Any, where: str, logical_name: str) -> dict[str, Any] | None:
    if value is None:
        return None
    entity = validate(WireEntity, value, where)
    if entity.LogicalName != logical_name:
        raise PayloadError(f"{where}.LogicalName: {entity.LogicalName!r} is not {logical_name!r}")
    return entity.attributes()


def parse_cds_notification(
    body: Any,
    headers: Mapping[str, str],
    mappings: MappingLookup,
    *,
    trace_context: dict[str, str] | None = None,
) -> CdsChange | None:
    """Parse one Dataverse webhook body; None when its table (or message) is not synced.

    Raises ``PayloadError`` naming the problem for a body of the wrong shape or types."""
    ctx = validate(Context, body)
    operation = MESSAGES.get(ctx.MessageName)
    emap = mappings.by_cds_logical_name(ctx.PrimaryEntityName)
    if operation is None or emap is None:
        return None
    mode = MODES.get(ctx.Mode)
    if mode is None:
        raise PayloadError(f"Mode: should be 0 or 1, got {ctx.Mode}")
    lookups = lookup_columns(emap)
    logical = ctx.PrimaryEntityName

    raw_target = ctx.parameter("Target")
    target: dict[str, Any] | None = None
    record_id = ctx.PrimaryEntityId
    if not is_empty_guid(record_id):
        _guid(record_id, "PrimaryEntityId")
    if operation is Operation.DELETE:
        if raw_target is not None:
            ref = validate(WireReference, raw_target, "InputParameters.Target")
            record_id = ref.Id
    else:
        attrs = _entity(raw_target, "InputParameters.Target", logical)
        if attrs is not None:
            target = normalise_attributes(attrs, lookups, "InputParameters.Target.Attributes")
            record_id = _target_id(raw_target) or record_id
    if is_empty_guid(record_id):
        raise PayloadError("PrimaryEntityId: the record id is missing")
    record_id = _guid(record_id, "InputParameters.Target.Id")

    post_raw = Context.first_image(ctx.PostEntityImages, "PostEntityImages.0.value")
    pre_raw = Context.first_image(ctx.PreEntityImages, "PreEntityImages.0.value")
    post = _normalised_image(post_raw, logical, lookups, "PostEntityImages.0.value")
    pre = _normalised_image(pre_raw, logical, lookups, "PreEntityImages.0.value")

    size_exceeded = bool(_header_values(headers, SIZE_EXCEEDED_HEADER))
    needs_fetch = size_exceeded or (target is None and operation is not Operation.DELETE)
    image = _post_image(operation, target, post, pre)
    changed = {} if target is None else {k: v for k, v in target.items() if k not in SYSTEM_COLUMNS}
    changed.pop(emap.cds.primary_id, None)

    cds = emap.cds
    sources = [s for s in (post, target, pre) if s]
    company = next((_guid_or_none(s.get(cds.company_read)) for s in sources if s.get(cds.company_read)), None)
    key = next(
        (_key_or_none(s.get(cds.key_field)) for s in sources if _key_or_none(s.get(cds.key_field))), None
    )
    modified = next((s.get("modifiedon") for s in (target, post) if s and s.get("modifiedon")), None)
    # OperationCreatedOn has milliseconds; modifiedon only whole seconds (two changes would tie).
    timestamp = parse_timestamp(ctx.OperationCreatedOn, "OperationCreatedOn") or parse_timestamp(
        modified, "modifiedon"
    )
    initiated = ctx.InitiatingUserId if not is_empty_guid(ctx.InitiatingUserId) else ctx.UserId
    return CdsChange(
        emap=emap,
        operation=operation,
        mode=mode,
        record_id=record_id,
        event_id=_event_id(ctx),
        company_id=company,
        company_seen=any(cds.company_read in s for s in sources),
        key=key,
        changed=changed,
        image=image,
        pre_image=pre,
        needs_fetch=needs_fetch,
        source_timestamp=timestamp or utcnow(),
        initiated_by=None if is_empty_guid(initiated) else str(initiated).lower(),
        correlation_id=ctx.CorrelationId or _last(_header_values(headers, CORRELATION_HEADER)),
        trace_context=dict(trace_context or {}),
    )


def _last(values: list[str]) -> str | None:
    return values[-1] if values else None  # a repeated header: the last one, as a dict would keep


def _target_id(raw_target: Any) -> str | None:
    value = raw_target.get("Id") if isinstance(raw_target, dict) else None
    return None if is_empty_guid(value) else str(value)


def _normalised_image(
    image: WireEntity | None, logical_name: str, lookups: Collection[str], where: str
) -> dict[str, Any] | None:
    if image is None:
        return None
    if image.LogicalName != logical_name:
        raise PayloadError(f"{where}.LogicalName: {image.LogicalName!r} is not {logical_name!r}")
    return normalise_attributes(image.attributes(), lookups, f"{where}.Attributes")


def _post_image(
    operation: Operation,
    target: dict[str, Any] | None,
    post: dict[str, Any] | None,
    pre: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """The row after the change, as far as the payload tells it."""
    if operation is Operation.DELETE:
        return None
    if post is not None:
        return {**post, **(target or {})}
    if pre is not None and target is not None:
        return {**pre, **target}  # full row before + the changed columns = the row after
    if operation is Operation.CREATE:
        return target  # a create's Target holds every column given
    return None
