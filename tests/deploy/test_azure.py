"""deploy/azure/main.bicep, offline: parsed with pycep (a Bicep parser on PyPI; no Bicep CLI or Azure
here) and checked against the bridge's own defaults and the resource types' documented properties
(the queue's names in full; for the others, the properties the bridge depends on).

The property names come from Microsoft's template reference, https://learn.microsoft.com/azure/templates/
(pages microsoft.servicebus/2024-01-01/namespaces/queues, microsoft.app/2024-03-01/containerapps,
microsoft.dbforpostgresql/2024-08-01/flexibleservers, microsoft.keyvault/2023-07-01/vaults)."""

from __future__ import annotations

import inspect
import re
from datetime import timedelta
from functools import cache
from typing import Any

from pycep import BicepParser

from bridge.queue.sqlite import SqliteQueue
from bridge.settings import SECRET_KEYS, SyncSettings
from tests.deploy.settings_names import DEPLOY, assert_documented_as_pending, is_setting

TEMPLATE = DEPLOY / "azure" / "main.bicep"

# Every property of a queue in the 2024-01-01 API (the reference page's resource format).
QUEUE_PROPERTIES = {
    "autoDeleteOnIdle", "deadLetteringOnMessageExpiration", "defaultMessageTimeToLive",
    "duplicateDetectionHistoryTimeWindow", "enableBatchedOperations", "enableExpress",
    "enablePartitioning", "forwardDeadLetteredMessagesTo", "forwardTo", "lockDuration",
    "maxDeliveryCount", "maxMessageSizeInKilobytes", "maxSizeInMegabytes",
    "requiresDuplicateDetection", "requiresSession", "status",
}  # fmt: skip
SERVICE_BUS_MAX_LOCK = timedelta(minutes=5)  # the queue reference's limit of lockDuration
SERVICE_BUS_MAX_DEDUPE = timedelta(days=7)  # and of duplicateDetectionHistoryTimeWindow
KEY_VAULT_SECRET = "Microsoft.KeyVault/vaults/secrets"


@cache
def _template() -> dict[str, Any]:
    parsed: dict[str, Any] = BicepParser(cache=False).parse(file_path=TEMPLATE)
    return parsed


def _resources(kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in _template()["resources"].items() if r["type"] == kind}


def _one(kind: str) -> dict[str, Any]:
    (resource,) = _resources(kind).values()
    config: dict[str, Any] = resource["config"]
    return config


def _duration(text: str) -> timedelta:
    """An ISO 8601 duration as Service Bus writes them (PnDTnHnMnS)."""
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?", text)
    assert match and text not in ("P", "PT"), f"not an ISO 8601 duration: {text!r}"
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _accessor(value: Any) -> list[str]:
    """``a.b.c`` as pycep represents a property access, as ["a", "b", "c"] ([] for anything else)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict) and value.get("operator", {}).get("type") == "property_accessor":
        operands = value["operator"]["operands"]
        return [*_accessor(operands["operand_1"]), *_accessor(operands["operand_2"])]
    return []


def test_the_duration_reader() -> None:
    assert _duration("PT1M") == timedelta(seconds=60)
    assert _duration("P7D") == timedelta(days=7)
    assert _duration("P1DT2H3M4.5S") == timedelta(days=1, hours=2, minutes=3, seconds=4.5)


def test_the_session_queue_equals_the_bridge_defaults() -> None:
    queue = _one("Microsoft.ServiceBus/namespaces/queues")["properties"]
    assert set(queue) <= QUEUE_PROPERTIES, set(queue) - QUEUE_PROPERTIES
    sync = SyncSettings()
    dedupe = inspect.signature(SqliteQueue.__init__).parameters["dedupe_retention_s"].default
    # A change's lease is the message lock: a dead replica's change is handed on after the same time.
    assert _duration(queue["lockDuration"]) == timedelta(seconds=sync.lease_s)
    # Attempts before a dead letter.
    assert queue["maxDeliveryCount"] == sync.max_attempts
    # The broker forgets a message id when the bridge forgets an event id.
    assert queue["requiresDuplicateDetection"] is True
    assert _duration(queue["duplicateDetectionHistoryTimeWindow"]) == timedelta(seconds=dedupe)
    # Per-record order across replicas; an expired change is a dead letter, never dropped.
    assert queue["requiresSession"] is True
    assert queue["deadLetteringOnMessageExpiration"] is True


def test_the_bridge_defaults_fit_within_what_service_bus_allows() -> None:
    # If a default grows past these, no queue can equal it: the queue code must renew or re-send.
    dedupe = inspect.signature(SqliteQueue.__init__).parameters["dedupe_retention_s"].default
    assert timedelta(seconds=SyncSettings().lease_s) <= SERVICE_BUS_MAX_LOCK
    assert timedelta(seconds=dedupe) <= SERVICE_BUS_MAX_DEDUPE


def test_the_namespace_tier_offers_sessions_and_duplicate_detection() -> None:
    namespace = _one("Microsoft.ServiceBus/namespaces")
    assert namespace["sku"]["name"] == "serviceBusSku"
    allowed = next(d["argument"] for d in _template()["parameters"]["serviceBusSku"]["decorators"]
                   if d["type"] == "allowed")  # fmt: skip
    assert set(allowed) <= {"Standard", "Premium"}  # Basic has neither


def test_container_apps_runs_n_replicas_always_on_with_its_probes() -> None:
    app = _one("Microsoft.App/containerApps")
    replicas = _template()["parameters"]["replicas"]
    assert replicas["type"] == "int" and replicas["default"] == 3
    assert app["properties"]["template"]["scale"] == {"minReplicas": "replicas", "maxReplicas": "replicas"}
    (container,) = app["properties"]["template"]["containers"]
    probes = {p["type"]: p["httpGet"] for p in container["probes"]}
    port = app["properties"]["configuration"]["ingress"]["targetPort"]
    assert probes["Liveness"] == {"path": "/healthz", "port": port}
    # /readyz is 503 while either system is down: as the readiness probe it would stop every replica
    # from taking the other system's changes, which the queue exists to hold (docs/deploy.md).
    assert probes["Readiness"] == {"path": "/healthz", "port": port}
    assert port == 8080  # deploy/container.toml's listen port (tests/deploy/test_dockerfile.py)


def test_every_secret_is_a_key_vault_reference_read_by_the_apps_identity() -> None:
    app = _one("Microsoft.App/containerApps")
    identities = app["identity"]["userAssignedIdentities"]
    (identity_key,) = identities
    identity_name = re.fullmatch(r"'?\$\{(\w+)\.id\}'?", identity_key)  # pycep keeps the key's quotes
    assert identity_name, identity_key
    vault_secrets = _resources(KEY_VAULT_SECRET)
    secrets = app["properties"]["configuration"]["secrets"]
    for secret in secrets:
        assert "value" not in secret, f"{secret['name']}: a value in the template, not a Key Vault reference"
        source, *path = _accessor(secret["keyVaultUrl"])
        assert source in vault_secrets and path == ["properties", "secretUri"], secret["name"]
        assert vault_secrets[source]["config"]["name"] == secret["name"]
        assert _accessor(secret["identity"]) == [identity_name.group(1), "id"]
    # The identity may read them: the Key Vault Secrets User role, on that vault.
    (role,) = _resources("Microsoft.Authorization/roleAssignments").values()
    assert "4633458b-17de-408a-b874-0445c86b69e6" in str(role["config"]["properties"]["roleDefinitionId"])
    assert _accessor(role["config"]["properties"]["principalId"])[0] == identity_name.group(1)
    assert _one("Microsoft.KeyVault/vaults")["properties"]["enableRbacAuthorization"] is True


def test_the_secrets_the_bridge_reads_come_from_key_vault() -> None:
    app = _one("Microsoft.App/containerApps")
    (container,) = app["properties"]["template"]["containers"]
    secret_names = {s["name"] for s in app["properties"]["configuration"]["secrets"]}
    by_ref = {e["name"]: e["secretRef"] for e in container["env"] if "secretRef" in e}
    assert set(by_ref.values()) <= secret_names
    # admin_password and metrics_token are optional (a token login, a scraper of its own): not deployed
    optional = ("admin_password", "metrics_token")
    expected = {f"DUALWRITE_{key.upper()}" for key in SECRET_KEYS if key not in optional}
    expected |= {"DUALWRITE_DATABASE_URL", "DUALWRITE_SERVICEBUS_CONNECTION_STRING"}
    assert expected <= set(by_ref), expected - set(by_ref)
    plain = {e["name"] for e in container["env"] if "value" in e}
    assert not plain & expected, "a secret given as a plain value"


def test_every_variable_is_a_setting_or_documented_as_not_yet_accepted() -> None:
    (container,) = _one("Microsoft.App/containerApps")["properties"]["template"]["containers"]
    env = {e["name"]: e.get("value", "") for e in container["env"]}
    assert env["DUALWRITE_QUEUE__BACKEND"] == "servicebus"
    assert env["DUALWRITE_STATE__BACKEND"] == "postgres"
    assert env["DUALWRITE_QUEUE__SERVICEBUS_QUEUE"] == _one("Microsoft.ServiceBus/namespaces/queues")["name"]
    assert is_setting("DUALWRITE_CDS__URL") and "DUALWRITE_CDS__URL" in env
    assert_documented_as_pending(env)


def test_postgres_is_a_flexible_server_with_the_bridges_database() -> None:
    server = _one("Microsoft.DBforPostgreSQL/flexibleServers")
    assert {"name", "tier"} <= set(server["sku"])
    required = {"version", "administratorLogin", "administratorLoginPassword", "storage"}
    assert required <= set(server["properties"])
    password = _template()["parameters"]["postgresAdminPassword"]
    assert any(d["type"] == "secure" for d in password["decorators"])
    assert _one("Microsoft.DBforPostgreSQL/flexibleServers/databases")["name"] == "databaseName"
    url = next(r["config"]["properties"]["value"] for r in _resources(KEY_VAULT_SECRET).values()
               if r["config"]["name"] == "database-url")  # fmt: skip
    assert url.startswith("postgresql://") and "sslmode=require" in url


def test_every_secret_parameter_is_secure() -> None:
    for name in ("clientSecret", "cdsWebhookKey", "scmWebhookKey", "adminToken", "postgresAdminPassword"):
        decorators = _template()["parameters"][name]["decorators"]
        assert any(d["type"] == "secure" for d in decorators), name


def test_every_cpu_size_has_its_memory() -> None:
    allowed = next(d["argument"] for d in _template()["parameters"]["replicaCpu"]["decorators"]
                   if d["type"] == "allowed")  # fmt: skip
    memory = {key.strip("'"): v for key, v in _template()["variables"]["memoryOfCpu"]["value"].items()}
    assert set(memory) == set(allowed)
    assert all(memory[cpu] == f"{int(float(cpu) * 2)}Gi" for cpu in allowed)  # 2 GiB per vCPU
