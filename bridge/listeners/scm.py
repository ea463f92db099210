"""F&O data events (one ``RemoteExecutionContext``-shaped object or an array) -> ``ChangeEvent``s (pure).

Attribute names arrive as ``mserp_`` + the OData property lower-cased; they are mapped back to the
map's F&O property names case-insensitively (``EntityMap.scm_property``). Columns the map does not
know are dropped. Values already are F&O OData JSON (enum labels, ISO dates).

The entity fields arrive in ``InputParameters``: ``Target`` and, for an update, ``PreImage`` (the
data events page); a pre-image in ``PreEntityImages`` is read too (the older shape).

Event id: ``"scm:" + EventId`` (a re-delivery repeats it). Source timestamp: ``EventTimeIso8601`` /
``EventTime`` (the commit time in milliseconds, repeated on re-delivery: what ordering follows), else
the row's ``ModifiedDateTime`` (whole seconds on F&O, so two changes in one second would tie).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.core.errors import PayloadError
from bridge.core.events import ChangeEvent, Operation, SyncMode, System, utcnow
from bridge.core.mapping import EntityMap
from bridge.listeners.values import MappingLookup, parse_timestamp, wcf_iso
from bridge.listeners.wire import Context, DataEventContext, WireEntity, validate

MODIFIED = "ModifiedDateTime"
MODIFIED_ATTRIBUTE = "mserp_" + MODIFIED.lower()
# Through the Power Platform integration the same events arrive as OnExternal* messages.
MESSAGES = {
    "Create": Operation.CREATE,
    "Update": Operation.UPDATE,
    "Delete": Operation.DELETE,
    "OnExternalCreated": Operation.CREATE,
    "OnExternalUpdated": Operation.UPDATE,
    "OnExternalDeleted": Operation.DELETE,
}
MAX_EVENTS = 1000  # one body; F&O's own bursts are far smaller


def scm_attributes(emap: EntityMap, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """``{"mserp_warehouseid": "11"}`` -> ``{"WarehouseId": "11"}`` for the columns the map knows."""
    out: dict[str, Any] = {}
    known = emap.scm_attribute_names()
    for name, value in attrs.items():
        attribute = name.lower()
        prop = MODIFIED if attribute == MODIFIED_ATTRIBUTE else known.get(attribute)
        if prop is None:
            continue
        if isinstance(value, str) and (iso := wcf_iso(value)) is not None:
            value = iso
        out[prop] = value
    return out


def parse_data_event(item: Any, mappings: MappingLookup, where: str = "") -> ChangeEvent | None:
    """One data event; None when its entity has no map (or the message is not a data change)."""
    ctx = validate(DataEventContext, item, where)
    at = f"{where}." if where else ""
    operation = MESSAGES.get(ctx.MessageName)
    emap = mappings.by_scm_event_name(ctx.PrimaryEntityName.lower())
    if operation is None or emap is None:
        return None
    raw_target = ctx.parameter("Target")
    if raw_target is None:
        raise PayloadError(f"{at}InputParameters: no Target")
    target_entity = validate(WireEntity, raw_target, f"{at}InputParameters.Target")
    target = scm_attributes(emap, target_entity.attributes())
    pre_entity = _pre_image(ctx, at)
    pre = None if pre_entity is None else scm_attributes(emap, pre_entity.attributes())

    scm = emap.scm
    key = _text(target.get(scm.key_field) or (pre or {}).get(scm.key_field))
    company = _text(target.get(scm.company_field) or ctx.BusinessEventLegalEntity)
    if key is None:
        raise PayloadError(
            f"{at}InputParameters.Target.Attributes: no mserp_{scm.key_field.lower()} (the key)"
        )
    if company is None:
        raise PayloadError(f"{at}InputParameters.Target.Attributes: no mserp_{scm.company_field.lower()}")

    if operation is Operation.CREATE:
        changed = dict(target)
    elif operation is Operation.UPDATE:
        changed = target if pre is None else {k: v for k, v in target.items() if pre.get(k) != v}
    else:
        changed = {}
    changed.pop(MODIFIED, None)
    # The event time first: it has milliseconds, while ModifiedDateTime has whole seconds, so two
    # quick updates of one record would tie on it and a late, older one could not be told apart.
    timestamp = (
        parse_timestamp(ctx.EventTimeIso8601, f"{at}EventTimeIso8601")
        or parse_timestamp(ctx.EventTime, f"{at}EventTime")
        or parse_timestamp(target.get(MODIFIED), f"{at}Target.{MODIFIED}")
        or utcnow()
    )
    return ChangeEvent(
        event_id=f"scm:{ctx.EventId}",
        source=System.SCM,
        entity=emap.name,
        company=company.upper(),
        key=key,
        operation=operation,
        mode=SyncMode.ASYNC,
        changed=changed,
        image=None if operation is Operation.DELETE else target,
        pre_image=pre,
        source_timestamp=timestamp,
        initiated_by=ctx.InitiatingUserAADObjectId.lower() if ctx.InitiatingUserAADObjectId else None,
        correlation_id=ctx.CorrelationId or ctx.EventId,
    )


def parse_scm_notification(body: Any, mappings: MappingLookup) -> list[ChangeEvent | None]:
    """A body of one event or an array of them; every item is validated before any is used."""
    if isinstance(body, list):
        if not body:
            raise PayloadError("<body>: an empty array holds no events")
        if len(body) > MAX_EVENTS:
            raise PayloadError(f"<body>: {len(body)} events in one body; at most {MAX_EVENTS}")
        return [parse_data_event(item, mappings, f"[{i}]") for i, item in enumerate(body)]
    return [parse_data_event(body, mappings)]


def _pre_image(ctx: DataEventContext, at: str) -> WireEntity | None:
    """The row before the change: ``InputParameters.PreImage``, where the data events page puts it;
    else the first of ``PreEntityImages``, where earlier payloads (and our emulator until issue 19)
    had it."""
    raw = ctx.parameter("PreImage")
    if raw is not None:
        return validate(WireEntity, raw, f"{at}InputParameters.PreImage")
    return Context.first_image(ctx.PreEntityImages, f"{at}PreEntityImages.0.value")


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
