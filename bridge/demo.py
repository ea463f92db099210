"""``dualwrite demo``: both emulators, the bridge on the embedded default, webhooks registered, demo
data created as a person would (so it flows through the bridge), URLs printed; runs until stopped."""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import shutil
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from pydantic import SecretStr

from bridge.app import Bridge, run_until_stopped
from bridge.core.mapping import MappingSet
from bridge.register import register_webhooks
from bridge.settings import (
    AuthSettings,
    ListenSettings,
    Settings,
    StorageSettings,
    SyncSettings,
    SystemSettings,
)
from bridge.systems.dataverse import DataverseClient

if TYPE_CHECKING:
    from bridge.sandbox.runtime import Sandbox

log = logging.getLogger(__name__)


def default_mappings_dir() -> Path:
    """The repository's mappings/ when run from a checkout, else ./mappings."""
    beside_package = Path(__file__).resolve().parent.parent / "mappings"
    return beside_package if beside_package.is_dir() else Path("mappings")


# Records a person creates at the start of the demo: (system, entity set, body).
DEMO_RECORDS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "scm",
        "PaymentTerms",
        {
            "Name": "Net30",
            "Description": "Net 30 days",
            "NumberOfDays": 30,
            "PaymentMethodType": "Net",
            "IsCashPayment": "No",
            "IsDefaultPaymentTerm": "Yes",
        },
    ),
    ("scm", "DeliveryModesV2", {"ModeCode": "Truck", "ModeDescription": "Truck freight"}),
    (
        "scm",
        "AssetMaintenanceAssetTypes",
        {"MaintenanceAssetTypeId": "PUMP", "Name": "Pumps", "CalculateKPITotal": "Yes"},
    ),
    (
        "scm",
        "Warehouses",
        {
            "WarehouseId": "11",
            "WarehouseName": "Main warehouse",
            "OperationalSiteId": "1",
            "WarehouseType": "Standard",
            "PrimaryAddressCity": "Seattle",
            "AreAdvancedWarehouseManagementProcessesEnabled": "Yes",
        },
    ),
    ("cds", "msdyn_shipvias", {"msdyn_name": "Air", "msdyn_description": "Air freight"}),
    (
        "cds",
        "msdyn_paymentterms",
        {
            "msdyn_name": "Net10",
            "msdyn_description": "Net 10 days",
            "msdyn_days": 10,
            "msdyn_numberofmonth": 0,
            "msdyn_cutoffdayofmonth": 25,
        },
    ),
]


async def seed_demo(sandbox: Any) -> int:
    """Create the demo records through the Web APIs as the sandbox's person-like client."""
    info = sandbox.info
    context = ssl.create_default_context(cafile=info.ca_file)
    company = await _company_id(sandbox, context)
    _seed_field_service_reference(sandbox)  # before any write makes the bridge write back
    made = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
        for system, entity_set, body in DEMO_RECORDS:
            if system == "scm":
                url = f"{info.scm_url}/{entity_set}"
                payload = {"dataAreaId": "usmf", **body}
                token = sandbox.token("user", "fno")
            else:
                url = f"{info.cds_url}/{entity_set}"
                payload = {**body, "msdyn_company@odata.bind": f"/cdm_companies({company})"}
                token = sandbox.token("user", "dataverse")
            async with http.post(url, json=payload, headers={"Authorization": f"Bearer {token}"}) as resp:
                made += resp.status in (201, 204)
        # a work order with its product and service lines, as a person: the work_order map syncs it
        from bridge.sandbox.fsseed import create_work_order

        made += await create_work_order(http, info.cds_url, sandbox.token("user", "dataverse"))
    return made


def _seed_field_service_reference(sandbox: Any) -> None:
    """Field Service reference data on both emulators, as if synced before (bridge/sandbox/fsseed.py)."""
    from bridge.sandbox.fsseed import seed_reference

    seed_reference(sandbox.dataverse, sandbox.fno)


async def _company_id(sandbox: Any, context: ssl.SSLContext) -> str:
    info = sandbox.info
    url = f"{info.cds_url}/cdm_companies?$filter=cdm_companycode eq 'USMF'&$select=cdm_companyid"
    headers = {"Authorization": f"Bearer {sandbox.token('user', 'dataverse')}"}
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http,
        http.get(url, headers=headers) as resp,
    ):
        body = await resp.json()
    return str(body["value"][0]["cdm_companyid"])


def demo_settings(info: Any, *, host: str, port: int, data_dir: Path) -> Settings:
    return Settings(
        cds=SystemSettings(url=info.cds_url, scope=info.cds_scope),
        scm=SystemSettings(url=info.scm_url, scope=info.scm_scope),
        auth=AuthSettings(authority=info.authority, client_id=info.client_id, ca_file=Path(info.ca_file)),
        listen=ListenSettings(host=host, port=port),
        storage=StorageSettings(data_dir=data_dir),
        sync=SyncSettings(),
        mappings_dir=default_mappings_dir(),
        client_secret=SecretStr(info.client_secret),
        cds_webhook_key=SecretStr(secrets.token_urlsafe(24)),
        scm_webhook_key=SecretStr(secrets.token_urlsafe(24)),
        admin_token=SecretStr(secrets.token_urlsafe(24)),
    )


async def connect(sandbox: Any, bridge: Bridge, *, mode: str) -> dict[str, Any]:
    """Register the bridge's webhooks on both emulated systems; returns the info-file keys."""
    settings = bridge.settings
    cds_key = settings.cds_webhook_key.get_secret_value()
    scm_key = settings.scm_webhook_key.get_secret_value()
    await point_at_bridge(
        sandbox, bridge.cds, bridge.mappings, bridge.url, cds_key=cds_key, scm_key=scm_key, mode=mode
    )
    cds_hook = f"{bridge.url}/webhooks/cds"
    scm_hook = f"{bridge.url}/webhooks/scm"
    return {
        "bridge_url": bridge.url,
        "dashboard_url": f"{bridge.url}/",
        "cds_webhook_url": f"{cds_hook}?code={cds_key}",  # WebhookKey auth: Dataverse adds ?code=
        "cds_webhook_headers": {},
        "scm_webhook_url": scm_hook,
        "scm_webhook_headers": {"x-dualwrite-key": scm_key},
        "admin_token": settings.admin_token.get_secret_value(),
        "webhook_mode": mode,
    }


async def point_at_bridge(
    sandbox: Any,
    cds: DataverseClient,
    mappings: MappingSet,
    bridge_url: str,
    *,
    cds_key: str,
    scm_key: str,
    mode: str,
) -> None:
    """Register a bridge's webhooks on both emulated systems: the Dataverse steps through the Web API
    (``cds``, as ``dualwrite register`` does), the F&O data-event endpoint in the emulator."""
    from bridge.sandbox.notify.fno import DataEventEndpoint

    await register_webhooks(
        cds,
        mappings,
        webhook_url=f"{bridge_url}/webhooks/cds",
        webhook_key=cds_key,
        mode="sync" if mode == "sync" else "async",
    )
    sandbox.notifier.fno.add_endpoint(
        DataEventEndpoint(
            name="dualwrite bridge", url=f"{bridge_url}/webhooks/scm", headers={"x-dualwrite-key": scm_key}
        )
    )


async def run_demo(args: argparse.Namespace) -> int:
    from bridge.sandbox.runtime import Sandbox, SandboxConfig

    state_dir: Path = args.state_dir
    config = SandboxConfig(
        host=args.host,
        authority_port=args.authority_port,
        cds_port=args.cds_port,
        scm_port=args.scm_port,
        state_dir=state_dir / "sandbox",
    )
    sandbox = Sandbox(config)
    # A port in use is an OSError naming it (bridge/cli.py prints it in one line and exits 2); what
    # did start is stopped first, so nothing else is printed on the way out.
    await _start_or_stop(sandbox)
    async with sandbox:
        info = sandbox.info
        bridge_dir = fresh_bridge_state(state_dir / "bridge")
        bridge = Bridge(demo_settings(info, host=args.host, port=args.port, data_dir=bridge_dir))
        await _start_or_stop(bridge)
        try:
            keys = await connect(sandbox, bridge, mode=args.mode)
            made = 0 if args.no_seed else await seed_demo(sandbox)
            everything = {**info.model_dump(mode="json"), **keys}
            if args.info_file is not None:
                args.info_file.parent.mkdir(parents=True, exist_ok=True)
                args.info_file.write_text(json.dumps(everything, indent=2) + "\n", encoding="utf-8")
            _print_banner(everything, made)
            await run_until_stopped(args.duration)
        finally:
            await bridge.stop()
    return 0


async def _start_or_stop(service: Sandbox | Bridge) -> None:
    try:
        await service.start()
    except BaseException:
        await service.stop()
        raise


def fresh_bridge_state(bridge_dir: Path) -> Path:
    """The emulators keep their records in memory, so every demo starts them empty: the bridge's queue
    and ledger from an earlier run would call the new seed "no change since last sync" and skip it.
    Start the bridge as fresh as the emulators (its files are the demo's own, under --state-dir)."""
    if bridge_dir.exists():
        log.info("demo: the emulators start empty, so the bridge state in %s starts fresh too", bridge_dir)
        shutil.rmtree(bridge_dir)
    return bridge_dir


def _token_command(info: dict[str, Any], scope: str) -> str:
    """A shell line that sets $TOKEN to an access token of the person-like client for ``scope``."""
    return f"""TOKEN=$(curl -s --cacert {info["ca_file"]} -d grant_type=client_credentials \\
    -d client_id={info["user_client_id"]} -d client_secret={info["user_client_secret"]} \\
    -d scope={scope} {info["authority"]}/oauth2/v2.0/token \\
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"""


def try_it_commands(info: dict[str, Any]) -> tuple[str, str]:
    """The banner's two shell snippets, as the person-like client (the bridge ignores its own client's
    writes as echoes): create a mode of delivery in F&O; read the ship via the bridge made of it in
    Dataverse. tests/e2e/test_demo_banner.py runs both against a running demo."""
    ca = info["ca_file"]
    body = '{"dataAreaId": "usmf", "ModeCode": "Rail", "ModeDescription": "Rail freight"}'
    write = f"""{_token_command(info, info["scm_scope"])}
curl -s --cacert {ca} -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
    -d '{body}' {info["scm_url"]}/DeliveryModesV2"""
    query = "$filter=msdyn_name%20eq%20%27Rail%27&$select=msdyn_name,msdyn_description"
    read = f"""{_token_command(info, info["cds_scope"])}
curl -s --cacert {ca} -H "Authorization: Bearer $TOKEN" \\
    '{info["cds_url"]}/msdyn_shipvias?{query}'"""
    return write, read


def work_order_command(info: dict[str, Any], number: str = "WO-DEMO-1") -> str:
    """A shell snippet that reads, as the person-like client, the F&O sales order the bridge made of
    the demo's work order, then its lines (products positive, services negative line numbers)."""
    ca, scm = info["ca_file"], info["scm_url"]
    header = f"CDSSalesOrderHeaders(dataAreaId='usmf',SalesOrderNumber='{number}')"
    fields = "SalesOrderNumber,OrderingCustomerAccountNumber,SalesOrderOriginType,ExternalWorkOrderStatus"
    return f"""{_token_command(info, info["scm_scope"])}
curl -s --cacert {ca} -H "Authorization: Bearer $TOKEN" -G \\
    --data-urlencode '$select={fields}' "{scm}/{header}"
curl -s --cacert {ca} -H "Authorization: Bearer $TOKEN" -G \\
    --data-urlencode "\\$filter=SalesOrderNumber eq '{number}'" \\
    --data-urlencode '$select=LineCreationSequenceNumber,ProductNumber,OrderedSalesQuantity' \\
    '{scm}/CDSSalesOrderLinesV2'"""


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _print_banner(info: dict[str, Any], made: int) -> None:
    write, read = try_it_commands(info)
    print(
        f"""
dualwrite demo is running
  dashboard        {info["dashboard_url"]}   (admin token: {info["admin_token"]})
  bridge webhooks  {info["bridge_url"]}/webhooks/cds and /webhooks/scm ({info["webhook_mode"]} CDS steps)
  Dataverse        {info["cds_url"]}
  F&O              {info["scm_url"]}
  token authority  {info["authority"]}   client {info["user_client_id"]} / {info["user_client_secret"]}
  CA file          {info["ca_file"]}
  metrics          {info["bridge_url"]}/metrics   (Prometheus; Authorization: Bearer <admin token>)
  demo records     {made} created as a person; watch them appear on the other side

Try it as the person-like client: create a mode of delivery in F&O,
{_indent(write)}
then read it in Dataverse as the ship via the bridge made of it (or watch the dashboard):
{_indent(read)}
A person created work order WO-DEMO-1 in Dataverse (two product lines, one service line); read the
sales order the work_order map made of it in F&O, then its lines:
{_indent(work_order_command(info))}
Stop with Ctrl+C.""",
        flush=True,
    )
