"""Starting the whole sandbox: token authority + Dataverse + F&O over HTTPS, with notifiers, faults
and the admin API wired in. ``async with Sandbox(SandboxConfig(...)) as sb:`` in tests and the CLI.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from bridge.sandbox.admin import AdminApi
from bridge.sandbox.contracts import SystemName
from bridge.sandbox.faults import Faults
from bridge.sandbox.identity import (
    ClientApp,
    TokenAuthority,
    bearer_auth_middleware,
    load_signing_key,
    new_signing_key,
    signing_key_pem,
)
from bridge.sandbox.notify.common import HttpPoster, JobLog
from bridge.sandbox.notify.dataverse import DataverseNotifier
from bridge.sandbox.notify.fno import FnoNotifier
from bridge.sandbox.tls import DEFAULT_STATE_DIR, SandboxTLS

DEFAULT_TENANT = str(uuid.uuid5(uuid.NAMESPACE_URL, "dualwrite-sandbox-tenant"))
DEFAULT_ORGANIZATION = str(uuid.uuid5(uuid.NAMESPACE_URL, "dualwrite-sandbox-organization"))
CREDENTIALS_FILE = "credentials.json"
SIGNING_KEY_FILE = "signing-key.pem"
MAX_BODY = 32 * 1024 * 1024  # the engines enforce their own, smaller limits (413)


class SandboxConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    authority_port: int = Field(default=8081, ge=0, le=65535)  # 0 = any free port
    cds_port: int = Field(default=8082, ge=0, le=65535)
    scm_port: int = Field(default=8083, ge=0, le=65535)
    state_dir: Path = DEFAULT_STATE_DIR
    tenant_id: str = DEFAULT_TENANT
    organization_id: str = DEFAULT_ORGANIZATION
    organization_name: str = "sandbox"
    client_id: str = "dualwrite-bridge"
    client_secret: str | None = None  # None: generated once and kept in the state directory
    user_client_id: str = "sandbox-user"
    user_client_secret: str | None = None
    admin_key: str | None = None  # None: generated at each start
    token_lifetime: int = Field(default=3600, ge=1)
    webhook_timeout: float = Field(default=60.0, gt=0)
    webhook_retry_delay: float = Field(default=0.0, ge=0)
    dataevent_timeout: float = Field(default=10.0, gt=0)
    dataevent_retries: int = Field(default=3, ge=0)
    dataevent_retry_interval: float = Field(default=1.0, ge=0)
    fault_seed: int = 0


class SandboxInfo(BaseModel):
    """What a client needs to drive the sandbox (``--info-file`` JSON)."""

    authority: str
    tenant_id: str
    client_id: str
    client_secret: str
    user_client_id: str
    user_client_secret: str
    cds_url: str
    cds_scope: str
    cds_origin: str
    scm_url: str
    scm_scope: str
    scm_origin: str
    ca_file: str
    admin_key: str
    admin_header: str = "x-sandbox-admin-key"
    cds_admin_url: str
    scm_admin_url: str
    organization_id: str
    bridge_object_id: str
    bridge_user_id: str
    user_object_id: str
    user_user_id: str


@dataclass
class Notifiers:
    dataverse: DataverseNotifier
    fno: FnoNotifier

    async def drain(self) -> None:
        """Wait for every queued webhook job and data event (held ones included)."""
        await self.dataverse.drain()
        await self.fno.drain()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:  # name the port: "Address already in use" alone does not say which
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _secrets(config: SandboxConfig) -> tuple[str, str]:
    """Client secrets: configured, else generated once and kept beside the CA."""
    path = config.state_dir / CREDENTIALS_FILE
    stored: dict[str, str] = {}
    if path.is_file():
        stored = json.loads(path.read_text())
    bridge = config.client_secret or stored.get("client_secret") or secrets.token_urlsafe(24)
    user = config.user_client_secret or stored.get("user_client_secret") or secrets.token_urlsafe(24)
    if stored != {"client_secret": bridge, "user_client_secret": user}:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"client_secret": bridge, "user_client_secret": user}, fh)
    return bridge, user


def _signing_key(state_dir: Path) -> Any:
    # Kept so tokens a client cached stay valid across restarts of the sandbox.
    path = state_dir / SIGNING_KEY_FILE
    if path.is_file():
        return load_signing_key(path.read_bytes())
    key = new_signing_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(signing_key_pem(key))
    return key


class Sandbox:
    """Token authority, Dataverse and F&O emulators on HTTPS, as one async context manager."""

    def __init__(
        self, config: SandboxConfig | None = None, *, dataverse: Any = None, fno: Any = None
    ) -> None:
        self.config = config or SandboxConfig()
        self._dataverse = dataverse
        self._fno = fno
        self._runners: list[web.AppRunner] = []
        self._info: SandboxInfo | None = None

    # ------------------------------------------------------------------ accessors
    @property
    def info(self) -> SandboxInfo:
        if self._info is None:
            raise RuntimeError("the sandbox is not started")
        return self._info

    @property
    def dataverse(self) -> Any:
        return self._dataverse

    @property
    def fno(self) -> Any:
        return self._fno

    def token(self, client: Literal["bridge", "user"] = "bridge", system: SystemName = "dataverse") -> str:
        """An access token without the HTTP round trip (for tests)."""
        client_id = self.config.client_id if client == "bridge" else self.config.user_client_id
        origin = self.info.cds_origin if system == "dataverse" else self.info.scm_origin
        return self.authority.issue(client_id, origin)

    def client_ssl_context(self) -> ssl.SSLContext:
        return self.tls.client_context()

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Sandbox:
        if self._info is None:
            await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        cfg = self.config
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.tls = SandboxTLS(cfg.state_dir, hosts=[cfg.host])
        server_ssl = self.tls.server_context()
        sockets = [_bind(cfg.host, p) for p in (cfg.authority_port, cfg.cds_port, cfg.scm_port)]
        host = _url_host(cfg.host)
        auth_origin, cds_origin, scm_origin = (f"https://{host}:{s.getsockname()[1]}" for s in sockets)
        bridge_secret, user_secret = _secrets(cfg)
        bridge = ClientApp(cfg.client_id, bridge_secret, "dualwrite bridge")
        user = ClientApp(cfg.user_client_id, user_secret, "sandbox user")
        self.authority = TokenAuthority(
            tenant_id=cfg.tenant_id,
            clients=[bridge, user],
            resources=[cds_origin, scm_origin],
            token_lifetime=cfg.token_lifetime,
            signing_key=_signing_key(cfg.state_dir),
            base_url=auth_origin,
        )
        self.admin_key = cfg.admin_key or secrets.token_urlsafe(24)
        self.faults: dict[SystemName, Faults] = {
            "dataverse": Faults("dataverse", seed=cfg.fault_seed),
            "fno": Faults("fno", seed=cfg.fault_seed),
        }
        self._make_services(cfg)
        poster = HttpPoster(self.tls.client_context())
        self.notifier = Notifiers(
            dataverse=DataverseNotifier(
                self._dataverse,
                faults=self.faults["dataverse"],
                organization_id=cfg.organization_id,
                organization_name=cfg.organization_name,
                organization_host=cds_origin.split("://", 1)[1],
                poster=poster,
                jobs=JobLog(),
                timeout=cfg.webhook_timeout,
                retry_delay=cfg.webhook_retry_delay,
                authvalue_of=getattr(self._dataverse, "authvalue", None),
            ),
            fno=FnoNotifier(
                faults=self.faults["fno"],
                organization_id=cfg.organization_id,
                organization_name=cfg.organization_name,
                organization_host=scm_origin.split("://", 1)[1],
                poster=poster,
                jobs=JobLog(),
                timeout=cfg.dataevent_timeout,
                retries=cfg.dataevent_retries,
                retry_interval=cfg.dataevent_retry_interval,
            ),
        )
        self._dataverse.hooks = self.notifier.dataverse
        self._fno.hooks = self.notifier.fno
        apps = [
            self.authority.app(),
            self._system_app("dataverse", cds_origin, self._dataverse, self.notifier.dataverse, None),
            self._system_app("fno", scm_origin, self._fno, self.notifier.fno, self.notifier.fno),
        ]
        try:
            for app, sock in zip(apps, sockets, strict=True):
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                self._runners.append(runner)
                await web.SockSite(runner, sock, ssl_context=server_ssl).start()
        except BaseException:
            await self.stop()
            raise
        self._info = SandboxInfo(
            authority=self.authority.authority,
            tenant_id=cfg.tenant_id,
            client_id=bridge.client_id,
            client_secret=bridge.secret,
            user_client_id=user.client_id,
            user_client_secret=user.secret,
            cds_url=f"{cds_origin}/api/data/v9.2",
            cds_scope=f"{cds_origin}/.default",
            cds_origin=cds_origin,
            scm_url=f"{scm_origin}/data",
            scm_scope=f"{scm_origin}/.default",
            scm_origin=scm_origin,
            ca_file=str(self.tls.ca_file.resolve()),
            admin_key=self.admin_key,
            cds_admin_url=f"{cds_origin}/_sandbox",
            scm_admin_url=f"{scm_origin}/_sandbox",
            organization_id=cfg.organization_id,
            bridge_object_id=bridge.principal.object_id,
            bridge_user_id=bridge.principal.user_id,
            user_object_id=user.principal.object_id,
            user_user_id=user.principal.user_id,
        )

    def _make_services(self, cfg: SandboxConfig) -> None:
        if self._dataverse is None:
            from bridge.sandbox.dataverse.service import DataverseService

            self._dataverse = DataverseService(
                organization_id=cfg.organization_id, organization_name=cfg.organization_name
            )
        if self._fno is None:
            from bridge.sandbox.fno.service import FnoService

            self._fno = FnoService()

    def _system_app(
        self, system: SystemName, origin: str, service: Any, notifier: Any, dataevents: FnoNotifier | None
    ) -> web.Application:
        app = web.Application(
            client_max_size=MAX_BODY,
            middlewares=[
                self.faults[system].middleware(),
                bearer_auth_middleware(self.authority, origin, system=system),
            ],
        )
        AdminApi(
            key=self.admin_key,
            service=service,
            faults=self.faults[system],
            jobs=notifier.jobs,
            notifier=notifier,
            dataevents=dataevents,
        ).add_to(app)
        if hasattr(service, "add_routes"):
            service.add_routes(app)
        else:
            app.add_routes(service.routes())
        return app

    async def stop(self) -> None:
        notifier = getattr(self, "notifier", None)
        if notifier is not None:
            await notifier.dataverse.close()
            await notifier.fno.close()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        for service in (self._dataverse, self._fno):
            close = getattr(service, "close", None)
            if callable(close):
                close()
        self._info = None
