"""``CreateMultiple``, ``UpdateMultiple`` and ``UpsertMultiple``: actions bound to an entity set,
``POST <set>/Microsoft.Dynamics.CRM.<Action>`` with ``{"Targets": [...]}``.

Shapes (MicrosoftDocs/powerapps-docs, powerapps-docs/developer/data-platform/bulk-operations.md, and
the Web API reference of UpsertMultiple, learn.microsoft.com/power-apps/developer/data-platform/
webapi/reference/upsertmultiple):
- "You must set the ``@odata.type`` property for each item in the ``Targets`` parameter."
- ``CreateMultiple`` answers 200 with ``{"@odata.context": "...$metadata#Microsoft.Dynamics.CRM.
  CreateMultipleResponse", "Ids": [...]}``; ``UpdateMultiple`` items carry the primary key and the
  action answers 204; ``UpsertMultiple`` items name their record with ``@odata.id`` (an alternate
  key, e.g. ``sample_examples(sample_keyattribute='0000001')``) or the primary key, and answer 204.
- Standard tables: "Any error ... causes the entire operation to roll back" (one transaction).
Each record notifies as its own Create or Update, as the sandbox's webhooks register per message.
"""

from __future__ import annotations

import json
from typing import Any

from bridge.sandbox.dataverse.errors import payload_error
from bridge.sandbox.dataverse.host import DataverseHost
from bridge.sandbox.odata.keys import Key, KeySyntaxError, parse_path
from bridge.sandbox.odata.ops import CallContext, OpRequest, OpResponse, Unit
from bridge.sandbox.store import TableStore

CRM = "Microsoft.Dynamics.CRM"
ACTIONS = ("CreateMultiple", "UpdateMultiple", "UpsertMultiple")


def _targets(op: OpRequest, ts: TableStore) -> list[dict[str, Any]]:
    entity = ts.table.logical_name
    try:
        body = json.loads(op.body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise payload_error(entity, f"The request body is not valid JSON: {exc}") from exc
    targets = body.get("Targets") if isinstance(body, dict) else None
    if not isinstance(targets, list) or not targets:
        raise payload_error(entity, "The parameter 'Targets' must be a non-empty array of records.")
    expected = f"{CRM}.{entity}"
    for i, target in enumerate(targets):
        if not isinstance(target, dict):
            raise payload_error(entity, f"Targets[{i}] is not a JSON object.")
        kind = str(target.get("@odata.type", "")).lstrip("#")
        if kind != expected:
            raise payload_error(
                entity,
                f"Targets[{i}] must set '@odata.type' to '{expected}' (it was '{kind or 'missing'}').",
            )
    return targets


def _record_key(svc: DataverseHost, ts: TableStore, target: dict[str, Any], i: int) -> Key | None:
    """The key an Update/Upsert target names: ``@odata.id`` or the primary key in the body."""
    pid = ts.table.primary_id or ""
    ref = target.get("@odata.id")
    if isinstance(ref, str):
        try:
            path = parse_path(ref.rsplit("/", 1)[-1])
        except KeySyntaxError as exc:
            raise payload_error(ts.table.logical_name, f"Targets[{i}] has a bad '@odata.id': {ref}") from exc
        if path.entity_set != ts.sql_name or path.key is None:
            raise payload_error(
                ts.table.logical_name, f"Targets[{i}] '@odata.id' must address {ts.sql_name}."
            )
        return path.key
    if target.get(pid) is not None:
        return Key(single=target[pid])
    return None


async def run(
    svc: DataverseHost, action: str, op: OpRequest, ctx: CallContext, unit: Unit, ts: TableStore
) -> OpResponse:
    targets = _targets(op, ts)
    codec = svc.codecs[ts.sql_name]
    user = ctx.principal.user_id
    ids: list[str] = []
    for i, target in enumerate(targets):
        body = {k: v for k, v in target.items() if k != "@odata.id"}
        parsed = codec.parse(body, svc._bind, ctx.content_ids)
        key = None if action == "CreateMultiple" else _record_key(svc, ts, target, i)
        if action == "UpdateMultiple" and key is None:
            raise payload_error(ts.table.logical_name, f"Targets[{i}] must carry '{ts.table.primary_id}'.")
        found = svc._find(ts, key, writer=True) if key is not None else None
        if found is None and action == "UpdateMultiple":
            assert key is not None
            raise svc._missing(ts, key)
        if found is None:
            values = {**parsed.values, **(svc._key_where(ts, key) if key is not None else {})}
            values, derived = svc.plugins.prepare(ts, values, None)
            row, _ = svc.writer.insert(ts, values, user_id=user, derived=derived)
            await svc._notify(unit, ctx, ts, "Create", None, row, {k: row[k] for k in parsed.given})
            await svc.plugins.after_write(unit, ctx, ts, None, row)
        else:
            _, existing, _ = found
            values, derived = svc.plugins.prepare(ts, parsed.values, existing)
            row, _ = svc.writer.update(ts, existing, values, user_id=user, derived=derived)
            await svc._notify(unit, ctx, ts, "Update", existing, row, {k: row[k] for k in parsed.given})
            await svc.plugins.after_write(unit, ctx, ts, existing, row)
        ids.append(str(row[ts.table.primary_id or ""]))
    if action != "CreateMultiple":
        return OpResponse(204, {"OData-Version": "4.0"})
    return OpResponse.json(
        200, {"@odata.context": f"{ctx.base_url}$metadata#{CRM}.CreateMultipleResponse", "Ids": ids}
    )
