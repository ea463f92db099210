"""``dualwrite register``: the bridge's webhook registrations on Dataverse, through its Web API.

Idempotent: the service endpoint, steps and images are found by name and updated in place, so running
it twice leaves one registration. Registers, per map, Create/Update/Delete post-operation steps
(synchronous by default, as dual-write's live sync is) with filtering attributes limited to the mapped
columns, a post image for Create/Update and a pre image for Update/Delete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from bridge.core.errors import ConfigError
from bridge.core.events import System
from bridge.core.mapping import DocumentMap, EntityMap, MappingSet
from bridge.systems.dataverse import DataverseClient

ENDPOINT_NAME = "dualwrite bridge"
WEBHOOK_CONTRACT = 8
AUTH_WEBHOOK_KEY = 4
POST_OPERATION = 40
MESSAGES = ("Create", "Update", "Delete")


@dataclass
class Registration:
    endpoint_id: str
    steps: dict[str, str] = field(default_factory=dict)  # step name -> id
    created: int = 0
    updated: int = 0


def step_name(emap: EntityMap, message: str, table: str | None = None) -> str:
    return f"dualwrite: {table or emap.cds.logical_name} {message}"


def registered_tables(emap: EntityMap) -> list[str]:
    """The Dataverse tables whose saves the map needs: its table; a document's header and line
    tables when it flows to F&O, none when it flows from F&O (a one-way map needs no webhook)."""
    if isinstance(emap, DocumentMap):
        return emap.cds_tables() if emap.source_system is System.CDS else []
    return [emap.cds.logical_name]


async def register_webhooks(
    client: DataverseClient,
    mappings: MappingSet,
    *,
    webhook_url: str,
    webhook_key: str,
    mode: Literal["sync", "async"] = "sync",
) -> Registration:
    if not webhook_key:
        raise ConfigError("a webhook key is needed (DUALWRITE_CDS_WEBHOOK_KEY)", field="cds_webhook_key")
    if "," in webhook_key:
        # Dataverse would send the whole list as ?code=, which matches none of its keys.
        raise ConfigError(
            "register one key, the first of DUALWRITE_CDS_WEBHOOK_KEY, not the list", field="cds_webhook_key"
        )
    endpoint_body = {
        "name": ENDPOINT_NAME,
        "description": "dualwrite: Dataverse changes to Finance and Operations",
        "contract": WEBHOOK_CONTRACT,
        "url": webhook_url,
        "authtype": AUTH_WEBHOOK_KEY,
        "authvalue": webhook_key,
    }
    reg = Registration(endpoint_id="")
    reg.endpoint_id = await _ensure(
        client, reg, "serviceendpoints", "serviceendpointid", f"name eq '{ENDPOINT_NAME}'", endpoint_body
    )
    messages = {
        m: await _single_id(client, "sdkmessages", "sdkmessageid", f"name eq '{m}'") for m in MESSAGES
    }
    for emap, table in ((m, t) for m in mappings.maps.values() for t in registered_tables(m)):
        for message in MESSAGES:
            filter_id = await _single_id(
                client,
                "sdkmessagefilters",
                "sdkmessagefilterid",
                f"primaryobjecttypecode eq '{table}' and _sdkmessageid_value eq {messages[message]}",
            )
            name = step_name(emap, message, table)
            body: dict[str, Any] = {
                "name": name,
                "mode": 0 if mode == "sync" else 1,
                "stage": POST_OPERATION,
                "rank": 1,
                "supporteddeployment": 0,
                "asyncautodelete": False,
                "sdkmessageid@odata.bind": f"/sdkmessages({messages[message]})",
                "sdkmessagefilterid@odata.bind": f"/sdkmessagefilters({filter_id})",
                "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({reg.endpoint_id})",
            }
            if message == "Update" and not isinstance(emap, DocumentMap):  # a document: every column
                body["filteringattributes"] = ",".join(sorted(_filtering_attributes(emap)))
            step_id = await _ensure(
                client,
                reg,
                "sdkmessageprocessingsteps",
                "sdkmessageprocessingstepid",
                f"name eq '{name}'",
                body,
            )
            reg.steps[name] = step_id
            for alias, image_type, prop in _images(message):
                await _ensure(
                    client,
                    reg,
                    "sdkmessageprocessingstepimages",
                    "sdkmessageprocessingstepimageid",
                    f"_sdkmessageprocessingstepid_value eq {step_id} and entityalias eq '{alias}'",
                    {
                        "name": alias,
                        "entityalias": alias,
                        "imagetype": image_type,
                        "messagepropertyname": prop,
                        "sdkmessageprocessingstepid@odata.bind": f"/sdkmessageprocessingsteps({step_id})",
                    },
                )
    return reg


def _filtering_attributes(emap: EntityMap) -> set[str]:
    columns = set(emap.source_columns(System.CDS))
    # The read form of a lookup is _x_value; filtering attributes name the column itself.
    return {c[1:-6] if c.startswith("_") and c.endswith("_value") else c for c in columns}


def _images(message: str) -> list[tuple[str, int, str]]:
    """(alias, imagetype 0 pre / 1 post, messagepropertyname) per message, as the docs register them."""
    if message == "Create":
        return [("PostImage", 1, "Id")]
    if message == "Update":
        return [("PreImage", 0, "Target"), ("PostImage", 1, "Target")]
    return [("PreImage", 0, "Target")]


async def _single_id(client: DataverseClient, entity_set: str, id_column: str, filter_: str) -> str:
    rows = await client.query(entity_set, filter=filter_, select=[id_column])
    if len(rows) != 1:
        raise ConfigError(f"expected one {entity_set} row where {filter_}, found {len(rows)}")
    return str(rows[0][id_column])


async def _ensure(
    client: DataverseClient,
    reg: Registration,
    entity_set: str,
    id_column: str,
    filter_: str,
    body: dict[str, Any],
) -> str:
    rows = await client.query(entity_set, filter=filter_, select=[id_column])
    if rows:
        row_id = str(rows[0][id_column])
        await client.update(entity_set, row_id, body)
        reg.updated += 1
        return row_id
    created_id = await client.create(entity_set, body, primary_id=id_column)
    reg.created += 1
    return created_id


def scm_endpoint_instructions(webhook_url: str, has_key: bool) -> str:
    header = (
        "x-dualwrite-key: <the first key of DUALWRITE_SCM_WEBHOOK_KEY>" if has_key else "(no key configured!)"
    )
    return (
        "Finance and Operations: in System administration > Setup > Business events > Endpoints, create an\n"
        f"HTTPS endpoint with URL {webhook_url} and header {header}; then, in the Data event catalog,\n"
        "activate Create, Update and Delete for the mapped entities against that endpoint."
    )
