"""The Dataverse service's own resources, answered without a table: ``WhoAmI``, the service document,
``$metadata`` and ``EntityDefinitions`` (all GET only; generated from the schema tables per request).

Shapes: MicrosoftDocs/powerapps-docs, powerapps-docs/developer/data-platform/webapi/
``web-api-service-documents.md``, ``query-metadata-web-api.md``; ``WhoAmI``: ``use-web-api-functions.md``.
"""

from __future__ import annotations

from bridge.sandbox.dataverse.errors import NOT_FOUND, DvError
from bridge.sandbox.dataverse.host import DataverseHost
from bridge.sandbox.metadata import csdl
from bridge.sandbox.metadata.query import ENTITY_SET, MetadataError
from bridge.sandbox.odata.ops import CallContext, OpRequest, OpResponse


def serve(svc: DataverseHost, op: OpRequest, ctx: CallContext) -> OpResponse:
    if op.path.startswith("WhoAmI"):
        return OpResponse.json(
            200,
            {
                "@odata.context": f"{ctx.base_url}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
                "BusinessUnitId": svc.business_unit_id,
                "UserId": ctx.principal.user_id,
                "OrganizationId": svc.organization_id,
            },
        )
    if op.path == "":
        return OpResponse.json(200, csdl.service_document(svc.tables.values(), ctx.base_url, (ENTITY_SET,)))
    if op.path == "$metadata":
        body = csdl.metadata_document(svc.tables.values())
        return OpResponse(200, {"Content-Type": "application/xml", "OData-Version": "4.0"}, body)
    try:
        return OpResponse.json(200, svc.entity_definitions.get(op.path, op.query, ctx.base_url))
    except MetadataError as exc:
        raise DvError(exc.status, NOT_FOUND, exc.message) from exc
