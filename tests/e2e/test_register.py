"""``register`` is idempotent: running it again leaves one registration, updated in place."""

from __future__ import annotations

from bridge.register import register_webhooks
from tests.e2e.harness import Harness


async def test_registering_twice_leaves_one_registration(env: Harness) -> None:
    service = env.sandbox.dataverse
    endpoints = [r for r in service.rows("serviceendpoints") if r["name"] == "dualwrite bridge"]
    steps = service.rows("sdkmessageprocessingsteps")
    images = service.rows("sdkmessageprocessingstepimages")
    # Create/Update/Delete on 10 tables: the 5 entity maps', the work order's header and its two line
    # tables, the invoice and its lines; none for products (the product map flows from F&O only).
    assert len(endpoints) == 1 and len(steps) == 30
    names = {s["name"] for s in steps}
    assert {"dualwrite: msdyn_workorderservice Update", "dualwrite: invoicedetail Delete"} <= names
    assert not any(" product " in n for n in names)
    key = env.bridge.settings.cds_webhook_key.get_secret_value()
    again = await register_webhooks(
        env.bridge.cds, env.bridge.mappings, webhook_url=f"{env.bridge.url}/webhooks/cds", webhook_key=key
    )
    assert again.created == 0 and again.updated > 0
    assert len([r for r in service.rows("serviceendpoints") if r["name"] == "dualwrite bridge"]) == 1
    assert len(service.rows("sdkmessageprocessingsteps")) == len(steps)
    assert len(service.rows("sdkmessageprocessingstepimages")) == len(images)
    # Updates carry the mapped columns as filtering attributes, so unmapped changes never call us.
    update = next(s for s in steps if s["name"] == "dualwrite: msdyn_shipvia Update")
    assert set(update["filteringattributes"].split(",")) == {"msdyn_description"}
