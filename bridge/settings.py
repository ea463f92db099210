"""Typed settings: a TOML file (``dualwrite serve --config FILE``) plus environment variables.

Precedence: environment (``DUALWRITE_*``, nested with ``__``) over the file over defaults.
Secrets are read from the environment only; a secret found in the file is a ConfigError, so a
config file can be committed and shared. Secrets are ``SecretStr`` and never logged.
"""

from __future__ import annotations

import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bridge.core.errors import ConfigError
from bridge.telemetry import TelemetrySettings

SECRET_KEYS = (
    "client_secret",
    "cds_webhook_key",
    "scm_webhook_key",
    "admin_token",
    "admin_password",
    "servicebus_connection_string",
    "metrics_token",
    "database_url",
)


class SystemSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo in the file is an error, not ignored

    url: str = Field(description="Dataverse Web API base (…/api/data/v9.2) or F&O OData base (…/data)")
    scope: str = Field(description="Token scope, e.g. https://org.crm.dynamics.com/.default")


class AuthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo in the file is an error, not ignored

    authority: str = Field(description="https://login.microsoftonline.com/<tenant> or the sandbox authority")
    client_id: str
    ca_file: Path | None = Field(
        default=None, description="Extra CA bundle to trust (never disables TLS checks)"
    )


class MetricsSettings(BaseModel):
    """``[metrics]``: ``GET /metrics`` in Prometheus' text format (docs/operations.md). Its token, if
    any, is a secret: ``DUALWRITE_METRICS_TOKEN`` (the admin token is accepted as well)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Serve /metrics on the bridge's port")


class ListenSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo in the file is an error, not ignored

    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = Field(default=None, description="URL the systems use to reach the bridge")
    max_body_bytes: int = Field(default=1_048_576, ge=1024)


class StorageSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo in the file is an error, not ignored

    data_dir: Path = Path(".dualwrite/bridge")
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"


# The backends a settings file may choose; each is one module behind its factory
# (bridge/queue/factory.py, bridge/state/factory.py).
QUEUE_BACKENDS = ("sqlite", "postgres", "servicebus")
STATE_BACKENDS = ("sqlite", "postgres")


def _one_of(kind: str, accepted: tuple[str, ...], value: str) -> str:
    if value not in accepted:
        raise ValueError(f"unknown {kind} backend {value!r}; accepted: {', '.join(accepted)}")
    return value


class QueueSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo in the file is an error, not ignored

    backend: str = Field(
        default="sqlite",
        description="Where the queue lives: sqlite (queue.db in data_dir), postgres (tables in [database] "
        "schema, shared by replicas) or servicebus (an Azure Service Bus queue with sessions, shared by "
        "replicas; docs/queue-and-state.md)",
    )
    servicebus_queue: str = Field(
        default="dualwrite", min_length=1, description="The session-enabled Service Bus queue's name"
    )
    servicebus_namespace: str | None = Field(
        default=None,
        description="<name>.servicebus.windows.net, for an Entra credential the composition root builds "
        "(instead of DUALWRITE_SERVICEBUS_CONNECTION_STRING)",
    )

    @field_validator("backend")
    @classmethod
    def _known(cls, value: str) -> str:
        return _one_of("queue", QUEUE_BACKENDS, value)


class StateSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo in the file is an error, not ignored

    backend: str = Field(
        default="sqlite",
        description="Where the state lives: sqlite (state.db in data_dir) or postgres (tables in "
        "[database] schema, shared by replicas)",
    )
    activity_keep: int = Field(
        default=200,
        ge=1,
        le=100_000,
        description="Activity entries kept per map: the last N state changes and the last N applied changes",
    )

    @field_validator("backend")
    @classmethod
    def _known(cls, value: str) -> str:
        return _one_of("state", STATE_BACKENDS, value)


class DatabaseSettings(BaseModel):
    """``[database]``: the PostgreSQL of ``backend = "postgres"`` ([queue], [state]). Its URL is a secret
    (it may hold a password): ``DUALWRITE_DATABASE_URL``, environment only, never logged."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    db_schema: str = Field(
        default="dualwrite",
        alias="schema",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="The schema of the bridge's tables (created and migrated at start); other data in the "
        "database is never touched",
    )
    pool_min: int = Field(default=1, ge=0, le=100, description="Connections each pool keeps open")
    pool_max: int = Field(default=5, ge=1, le=100, description="Connections each pool opens at most")
    synchronous_commit: Literal["on", "off"] = Field(
        default="on",
        description="on: a commit (an acknowledged webhook) survives the database server's crash; off: "
        "commits no longer wait for the disk, and a crash of the server (never of a bridge) may lose the "
        "last fraction of a second, like [storage] synchronous = NORMAL on SQLite (docs/queue-and-state.md)",
    )


class SyncSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo in the file is an error, not ignored

    sync_budget_s: float = Field(default=20.0, gt=0, lt=60, description="Sync webhook answer deadline")
    max_attempts: int = Field(default=8, ge=1, description="Async attempts before dead-lettering")
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=60.0, gt=0)
    concurrency: int = Field(default=256, ge=1, le=1024, description="Records applied in parallel")
    lease_s: float = Field(default=60.0, gt=0)
    stop_grace_s: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="At shutdown (SIGTERM), how long the changes in flight may finish before the rest are "
        "cancelled and their leases handed back to the other replicas",
    )
    request_timeout_s: float = Field(default=30.0, gt=0)
    coalesce_writes: bool = Field(
        default=True,
        description="Send asynchronous writes that queue up behind requests in flight to one system as one "
        "$batch of independent requests (no delay when idle; see docs/performance.md)",
    )
    apply_processes: int = Field(
        default=0,
        ge=0,
        le=8,
        description="Helper processes that apply asynchronous changes, so the bridge uses more than one "
        "core (0 = everything in the serve process; see docs/operations.md)",
    )
    apply_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="How much lower the apply processes' CPU priority is than the serve process's (a Unix "
        "nice increment): when the cores are busy, webhooks and synchronous changes go first and the "
        "asynchronous applies yield (see docs/operations.md)",
    )


class DriftSettings(BaseModel):
    """``[drift]``: comparing both systems' mapped values, and catching up after downtime
    (docs/operations.md, "Drift: check and repair")."""

    model_config = ConfigDict(extra="forbid")  # a typo in the file is an error, not ignored

    check_every_minutes: int = Field(
        default=0, ge=0, le=10_080, description="Check every map for drift this often (0 = off)"
    )
    catch_up_on_start: bool = Field(
        default=True,
        description="On start, sync what changed on either system since the last change the bridge saw",
    )
    catch_up_margin_s: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="How far before the watermark the catch-up looks (clock skew, changes in flight)",
    )


class InitialSyncSettings(BaseModel):
    """``[initial]``: ``dualwrite sync initial`` (docs/operations.md, "Initial sync")."""

    model_config = ConfigDict(extra="forbid")
    batch_size: int = Field(
        default=1000,
        ge=1,
        le=1000,
        description="Writes per $batch change set (Dataverse takes at most 1,000)",
    )
    planned_limit: int = Field(
        default=10_000, ge=0, description="Writes a dry run lists one by one (all are counted)"
    )
    page_size: int = Field(
        default=5000,
        ge=1,
        le=5000,
        description="Rows per page read (Prefer: odata.maxpagesize; Dataverse: 5,000 at most)",
    )


class AlertAction(StrEnum):
    PAUSE = "pause"  # pause the map through the controller
    WEBHOOK = "webhook"  # POST {"text": ...} to ``url`` (Teams and Slack incoming webhooks accept it)
    LOG = "log"  # one line at ERROR level


class AlertSettings(BaseModel):
    """One ``[[alerts]]`` table: act once ``failures`` failures happened within ``minutes`` minutes
    (counted since the map last resumed). Several per map are fine. They seed the state store on the
    first start; afterwards the store (changed through /api/alerts) is what counts (docs/operations.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    map: str = Field(
        default="*", min_length=1, max_length=100, description='A map name, or "*" for every map'
    )
    failures: int = Field(default=10, ge=1, le=100_000, description="N failures ...")
    minutes: int = Field(default=15, ge=1, le=10_080, description="... within M minutes")
    action: AlertAction = AlertAction.PAUSE
    url: str | None = Field(default=None, max_length=2000, description="Webhook URL (action webhook)")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith(("https://", "http://")):
            raise ValueError("the webhook URL must start with https:// (or http:// on a private network)")
        return value

    @model_validator(mode="after")
    def _webhook_has_url(self) -> AlertSettings:
        if self.action is AlertAction.WEBHOOK and not self.url:
            raise ValueError("an alert with action webhook needs a url")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DUALWRITE_", env_nested_delimiter="__", extra="forbid")

    cds: SystemSettings
    scm: SystemSettings
    auth: AuthSettings
    listen: ListenSettings = ListenSettings()
    storage: StorageSettings = StorageSettings()
    queue: QueueSettings = QueueSettings()
    state: StateSettings = StateSettings()
    database: DatabaseSettings = DatabaseSettings()
    sync: SyncSettings = SyncSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    metrics: MetricsSettings = MetricsSettings()
    drift: DriftSettings = DriftSettings()
    initial: InitialSyncSettings = InitialSyncSettings()
    mappings_dir: Path = Path("mappings")
    alerts: list[AlertSettings] = Field(
        default_factory=lambda: [AlertSettings()],
        description="Alert rules ([[alerts]] tables); the default pauses any map after 10 failures in 15 min",
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop", description="Event loop of dualwrite serve (bridge.runtime)"
    )
    gc_gen0_threshold: int = Field(
        default=50_000,
        ge=100,
        description="Net allocations between young garbage collections in dualwrite serve, after "
        "startup's objects are frozen (bridge.runtime; Python's default is 700)",
    )
    # Secrets: environment only (DUALWRITE_CLIENT_SECRET, …).
    client_secret: SecretStr = SecretStr("")
    # One key, or several separated by commas while one is rotated out: see webhook_keys().
    cds_webhook_key: SecretStr = SecretStr("")
    scm_webhook_key: SecretStr = SecretStr("")
    admin_token: SecretStr = SecretStr("")
    admin_password: SecretStr = SecretStr("")  # the dashboard login; the admin token when empty
    servicebus_connection_string: SecretStr = SecretStr("")  # [queue] backend = "servicebus"
    metrics_token: SecretStr = SecretStr("")  # a scraper's bearer token for /metrics only (optional)
    database_url: SecretStr = SecretStr("")  # backend = "postgres": postgresql://user@host:5432/db

    def webhook_keys(self, system: Literal["cds", "scm"]) -> list[str]:
        """The keys of one webhook endpoint, from ``DUALWRITE_<CDS|SCM>_WEBHOOK_KEY``: comma-separated,
        each trimmed, empty ones dropped. Every one is accepted; the first is the one
        ``dualwrite register`` gives Dataverse (and the one to configure in F&O)."""
        value = (self.cds_webhook_key if system == "cds" else self.scm_webhook_key).get_secret_value()
        return [key.strip() for key in value.split(",") if key.strip()]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment outranks the file's values, which arrive as init arguments.
        return (env_settings, init_settings)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read the TOML file (if any), reject secrets in it, then let the environment override."""
    data: dict[str, Any] = {}
    if config_file is not None:
        try:
            data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError("config file not found", file=str(config_file)) from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}", file=str(config_file)) from exc
        for key in SECRET_KEYS:
            if key in data:
                raise ConfigError(
                    f"secrets are read from the environment only: set DUALWRITE_{key.upper()} instead",
                    file=str(config_file),
                    field=key,
                )
        if isinstance(data.get("metrics"), dict) and "token" in data["metrics"]:
            raise ConfigError(
                "secrets are read from the environment only: set DUALWRITE_METRICS_TOKEN instead",
                file=str(config_file),
                field="metrics.token",
            )
        if isinstance(data.get("database"), dict) and "url" in data["database"]:
            raise ConfigError(
                "secrets are read from the environment only: set DUALWRITE_DATABASE_URL instead",
                file=str(config_file),
                field="database.url",
            )
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise ConfigError(problems, file=str(config_file) if config_file else None) from exc
