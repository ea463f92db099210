"""The bridge process: everything ``dualwrite serve`` runs, built from ``Settings``.

listeners (aiohttp) -> Engine.submit -> queue -> worker -> Applier -> system clients
                                                      \\-> state (ledger, failures)  -> ops API
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Literal

from aiohttp import web

from bridge.catchup import CatchUp
from bridge.core.errors import ConfigError
from bridge.core.mapping import MappingSet, load_mappings
from bridge.drift import DriftChecker, DriftService
from bridge.engine.activity import ActivityRecorder
from bridge.engine.apply import Applier
from bridge.engine.control import EngineController, Probe
from bridge.engine.pool import ApplyPool
from bridge.engine.recovery import Recovery
from bridge.engine.worker import Engine
from bridge.listeners.auth import SharedKeyAuth
from bridge.listeners.body import SERVER_HANDLER_ARGS
from bridge.listeners.handlers import WebhookListener
from bridge.metrics import REQUEST_COUNT_KEYS, Metrics, RequestCounts
from bridge.ops.api_drift import drift_specs
from bridge.ops.api_systems import Registrations, SystemsApi, SystemSource
from bridge.ops.auth import AdminAuth
from bridge.ops.server import setup_ops
from bridge.queue.factory import create_queue, open_queue
from bridge.register import (
    ENDPOINT_NAME,
    MESSAGES,
    register_webhooks,
    registered_tables,
    scm_endpoint_instructions,
    step_name,
)
from bridge.runtime import settle_heap
from bridge.settings import Settings, load_settings
from bridge.state.factory import create_state, drift_state
from bridge.storage.owner import owner_id
from bridge.syncrun import InitialService
from bridge.systems.answers import count_answers
from bridge.systems.auth import TokenProvider
from bridge.systems.connect import connect_systems
from bridge.systems.dataverse import DataverseClient
from bridge.systems.sides import sides_for
from bridge.telemetry import configure_export

log = logging.getLogger(__name__)


def _webhook_keys(settings: Settings, system: Literal["cds", "scm"]) -> list[str]:
    keys = settings.webhook_keys(system)
    if not keys:
        name = f"{system}_webhook_key"
        raise ConfigError(f"set DUALWRITE_{name.upper()} in the environment", field=name)
    return keys


def _secret(settings: Settings, name: str) -> str:
    value = str(getattr(settings, name).get_secret_value())
    if not value:
        raise ConfigError(f"set DUALWRITE_{name.upper()} in the environment", field=name)
    return value


class Bridge:
    def __init__(self, settings: Settings, *, mappings: MappingSet | None = None) -> None:
        self.settings = settings
        self.mappings = mappings or load_mappings(settings.mappings_dir)
        self.systems = connect_systems(settings, _secret(settings, "client_secret"))
        self.cds_tokens, self.scm_tokens = self.systems.cds_tokens, self.systems.scm_tokens
        self.cds, self.scm = self.systems.cds, self.systems.scm
        # One health per system (GET /api/systems): its client's answers and its token's state.
        self.cds_tokens.health, self.scm_tokens.health = self.cds.http.health, self.scm.http.health
        settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
        # The queue and the state store the settings choose ([queue] / [state] backend). The queue's
        # leases name this bridge (its data directory's owner id), so a restart takes its own back.
        self.owner = owner_id(settings.storage.data_dir)
        self.queue = create_queue(settings, owner=self.owner)
        self.state = create_state(settings)
        self.metrics = Metrics(maps=self.mappings.maps)
        self.metrics.watch_requests(self._request_counts)
        self.own_ids: set[str] = set()
        sides = sides_for(self.systems, self.mappings)
        self.applier = Applier(mappings=self.mappings, state=self.state, sides=sides, own_ids=self.own_ids)
        self.pool: ApplyPool | None = None
        if settings.sync.apply_processes:
            if mappings is not None:
                raise ConfigError(
                    "apply processes read the mapping files themselves: leave mappings to mappings_dir",
                    field="sync.apply_processes",
                )
            self.pool = ApplyPool(
                settings=settings,
                client_secret=_secret(settings, "client_secret"),
                own_ids=self.own_ids,
                local=self.applier,
                log_level=logging.getLogger().getEffectiveLevel(),
            )
        self.engine = Engine(
            queue=self.queue,
            state=self.state,
            applier=self.applier,
            recovery=Recovery(mappings=self.mappings, state=self.state, sides=sides),
            metrics=self.metrics,
            settings=settings.sync,
            apply_async=self.pool.apply if self.pool else None,
            activity=ActivityRecorder(self.state, keep=settings.state.activity_keep),
            owner=self.owner,
        )
        self.controller = EngineController(
            engine=self.engine,
            queue=self.queue,
            state=self.state,
            probes={
                "cds": Probe(self.cds.who_am_i, f"Dataverse at {self.cds.http.base_url}"),
                "scm": Probe(self._probe_scm, f"Finance and Operations at {self.scm.http.base_url}"),
                "tokens": Probe(self._probe_tokens, f"the token authority {self.cds_tokens.authority}"),
            },
        )
        # Issue 21: the drift check (bridge/drift.py), on demand and on [drift] check_every_minutes.
        self.drift = DriftService(
            DriftChecker(
                mappings=self.mappings,
                systems=self.systems,
                sides=sides,
                controller=self.controller,
                drift=drift_state(self.state),
            ),
            every_minutes=settings.drift.check_every_minutes,
        )
        self.initial = InitialService(
            settings=settings,
            mappings=self.mappings,
            state=self.state,
            systems=self.systems,
            controller=self.controller,
            queue=self.queue,
        )
        self.listener = WebhookListener(
            mappings=self.mappings,
            sink=self.engine,
            cds_auth=SharedKeyAuth(_webhook_keys(settings, "cds")),  # every configured key (rotation)
            scm_auth=SharedKeyAuth(_webhook_keys(settings, "scm")),
            companies=self.cds,
            fetch_cds_record=self.cds.get,
            max_body_bytes=settings.listen.max_body_bytes,
            on_ignored=self.metrics.ignored,
        )
        self.admin_auth = AdminAuth(
            _secret(settings, "admin_token"), password=settings.admin_password.get_secret_value() or None
        )
        # No automatic decompression, no draining of unread bodies (bridge/listeners/body.py).
        self.app = web.Application(
            client_max_size=settings.listen.max_body_bytes + 1024, handler_args=SERVER_HANDLER_ARGS
        )
        self.listener.add_to(self.app)
        self.watcher = setup_ops(
            self.app,
            controller=self.controller,
            queue=self.queue,
            state=self.state,
            metrics=self.metrics,
            auth=self.admin_auth,
            systems=self._systems_api(),
            alert_seed=settings.alerts,
            prometheus=settings.metrics.enabled,
            metrics_token=settings.metrics_token.get_secret_value(),
            answers=count_answers(self.systems),
            sync=self.initial,
            routes=drift_specs(self.drift, drift_state(self.state)),
        )
        # Issue 21: changes made while the bridge was down (bridge/catchup.py).
        self.catchup = CatchUp(
            mappings=self.mappings,
            cds=self.cds,
            scm=self.scm,
            sink=self.engine,
            state=self.state,
            drift=drift_state(self.state),
            margin_s=settings.drift.catch_up_margin_s,
        )
        self._runner: web.AppRunner | None = None
        self._identity_task: asyncio.Task[None] | None = None
        self.port = settings.listen.port

    @property
    def url(self) -> str:
        return f"http://{self.settings.listen.host}:{self.port}"

    def _systems_api(self) -> SystemsApi:
        """GET /api/systems: both systems' health, and the registrations ``register`` writes."""
        expected = {
            step_name(emap, message, table): (name, message)
            for name, emap in self.mappings.maps.items()
            for table in registered_tables(emap)
            for message in MESSAGES
        }
        return SystemsApi(
            [
                SystemSource("cds", "Dataverse", self.cds.http.base_url, self.cds.http.health.figures),
                SystemSource(
                    "scm", "Finance and Operations", self.scm.http.base_url, self.scm.http.health.figures
                ),
            ],
            Registrations(self.cds.query, endpoint_name=ENDPOINT_NAME, expected=expected),
        )

    def _request_counts(self) -> dict[str, RequestCounts]:
        out: dict[str, RequestCounts] = {}
        for system, own in self.systems.request_counts().items():
            helpers = self.pool.request_counts(system) if self.pool else dict.fromkeys(REQUEST_COUNT_KEYS, 0)
            out[system] = RequestCounts(**{key: own[key] + helpers[key] for key in REQUEST_COUNT_KEYS})
        return out

    async def _probe_scm(self) -> None:
        await self.scm.query("LegalEntities", select=["LegalEntityId"], top=1)

    async def _probe_tokens(self) -> None:
        await self.cds_tokens.token()
        await self.scm_tokens.token()

    async def learn_identity(self) -> None:
        """Our own principals, so our writes coming back are recognised as echoes."""
        who = await self.cds.who_am_i()
        self.own_ids.update(
            {who.user_id, await self.cds_tokens.own_object_id(), await self.scm_tokens.own_object_id()}
        )
        if self.pool is not None:
            self.pool.share_ids(self.own_ids)
        log.info("bridge principals learned (Dataverse user %s)", who.user_id)

    async def _learn_until_known(self) -> None:
        delay = 1.0
        while True:
            try:
                await self.learn_identity()
                return
            except Exception as exc:  # systems may come up after us: keep trying, the ledger covers meanwhile
                log.warning(
                    "cannot learn the bridge's own principals yet (%s); retrying in %.0fs", exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)

    async def start(self) -> None:
        await open_queue(self.queue)  # takes back this bridge's leases from before a crash
        await self.state.open()
        try:
            await asyncio.wait_for(self.learn_identity(), timeout=15)
        except Exception as exc:
            log.warning("own principals not known at start (%s): learning in the background", exc)
            self._identity_task = asyncio.create_task(self._learn_until_known())
        if self.pool is not None:
            await self.pool.start()
        await self.engine.start()
        self.catchup.start(catch_up=self.settings.drift.catch_up_on_start)
        self.drift.start()
        # handler_cancellation: a sync webhook whose caller hangs up is cancelled, so we can undo its write.
        self._runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.listen.host, self.settings.listen.port)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        log.info("bridge listening on %s", self.url)

    async def stop(self) -> None:
        if self._identity_task is not None:
            self._identity_task.cancel()
        await self.initial.stop()
        self.engine.drain()  # /readyz answers 503 "stopping" from here on
        if self._runner is not None:
            await self._runner.cleanup()
        await self.catchup.stop()
        await self.drift.stop()
        # The changes in flight finish (or are cancelled), and this replica's leases go back.
        await self.engine.stop(grace_s=self.settings.sync.stop_grace_s)
        if self.pool is not None:
            await self.pool.stop()
        await self.systems.close()
        await self.queue.close()
        await self.state.close()

    async def __aenter__(self) -> Bridge:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def run_until_stopped(duration: float | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=duration)


async def serve(settings: Settings) -> int:
    configure_export(settings.telemetry)
    async with Bridge(settings) as bridge:
        print(
            f"dualwrite bridge on {bridge.url} (dashboard {bridge.url}/,"
            f" webhooks {bridge.url}/webhooks/cds and /webhooks/scm)"
        )
        settle_heap(settings.gc_gen0_threshold)
        await run_until_stopped()
    return 0


async def register(config: Path, *, webhook_url: str | None, mode: Literal["sync", "async"]) -> int:
    settings = load_settings(config)
    base = settings.listen.public_url
    if webhook_url is None and not base:
        raise ConfigError("set listen.public_url or pass --webhook-url", field="listen.public_url")
    cds_url = webhook_url or f"{base}/webhooks/cds"
    mappings = load_mappings(settings.mappings_dir)
    ca_file = str(settings.auth.ca_file) if settings.auth.ca_file else None
    tokens = TokenProvider(
        settings.auth.authority,
        settings.auth.client_id,
        _secret(settings, "client_secret"),
        settings.cds.scope,
        ca_file=ca_file,
    )
    async with DataverseClient(settings.cds.url, tokens, ca_file=ca_file) as client:
        reg = await register_webhooks(
            client, mappings, webhook_url=cds_url, webhook_key=_webhook_keys(settings, "cds")[0], mode=mode
        )
    print(
        f"Dataverse: webhook {cds_url} registered"
        f" ({len(reg.steps)} steps; {reg.created} created, {reg.updated} updated)"
    )
    scm_url = cds_url.rsplit("/webhooks/", 1)[0] + "/webhooks/scm"
    print(scm_endpoint_instructions(scm_url, bool(settings.webhook_keys("scm"))))
    return 0
