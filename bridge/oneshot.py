"""The bridge's engine for one command in its own process (``sync record``, ``sync check``,
``mappings try``), when no bridge runs: the same system clients, sides, applier, queue and state
store as ``dualwrite serve`` builds from the same settings, without listeners or a worker loop.

When a bridge does run, a command asks it through the operations API instead (``running_bridge``),
so the queue and state store have one owner.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import TracebackType

import aiohttp

from bridge.core.errors import ConfigError
from bridge.core.mapping import MappingSet, load_mappings
from bridge.engine.activity import ActivityRecorder
from bridge.engine.apply import Applier
from bridge.engine.control import EngineController
from bridge.engine.recovery import Recovery
from bridge.engine.worker import Engine
from bridge.metrics import Metrics
from bridge.queue.factory import create_queue, open_queue
from bridge.settings import Settings
from bridge.state.factory import create_state
from bridge.storage.owner import owner_id
from bridge.systems.connect import connect_systems
from bridge.systems.sides import sides_for

log = logging.getLogger(__name__)
HEALTH_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class RunningBridge:
    """A bridge answering at ``url``, reached with the admin token."""

    url: str
    token: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def bridge_url(settings: Settings) -> str:
    if settings.listen.public_url:
        return settings.listen.public_url.rstrip("/")
    host = settings.listen.host
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://{host}:{settings.listen.port}"


async def running_bridge(settings: Settings) -> RunningBridge | None:
    """The bridge these settings describe, if one answers its liveness check; else None."""
    url = bridge_url(settings)
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HEALTH_TIMEOUT_S)) as http,
            http.get(f"{url}/healthz") as resp,
        ):
            if resp.status != 200:
                return None
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None
    token = settings.admin_token.get_secret_value()
    if not token:
        raise ConfigError(
            f"a bridge runs at {url}: set DUALWRITE_ADMIN_TOKEN to its admin token", field="admin_token"
        )
    return RunningBridge(url, token)


class OneShot:
    """``async with OneShot(settings) as bridge:`` the engine's parts, queue and state opened."""

    def __init__(self, settings: Settings, *, mappings: MappingSet | None = None) -> None:
        self.settings = settings
        self.mappings = mappings or load_mappings(settings.mappings_dir)
        secret = settings.client_secret.get_secret_value()
        if not secret:
            raise ConfigError("set DUALWRITE_CLIENT_SECRET in the environment", field="client_secret")
        self.systems = connect_systems(settings, secret)
        self.sides = sides_for(self.systems, self.mappings)
        settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
        self.queue = create_queue(settings, owner=owner_id(settings.storage.data_dir))
        self.state = create_state(settings)
        self.own_ids: set[str] = set()
        self.applier = Applier(
            mappings=self.mappings, state=self.state, sides=self.sides, own_ids=self.own_ids
        )
        self.engine = Engine(
            queue=self.queue,
            state=self.state,
            applier=self.applier,
            recovery=Recovery(mappings=self.mappings, state=self.state, sides=self.sides),
            metrics=Metrics(maps=self.mappings.maps),
            settings=settings.sync,
            activity=ActivityRecorder(self.state, keep=settings.state.activity_keep),
        )
        self.controller = EngineController(engine=self.engine, queue=self.queue, state=self.state, probes={})

    async def __aenter__(self) -> OneShot:
        try:
            await open_queue(self.queue)
            await self.state.open()
            # Our own principals, so the rules that skip our own echoes see them as the bridge does.
            who = await self.systems.cds.who_am_i()
            self.own_ids.update(
                {
                    who.user_id,
                    await self.systems.cds_tokens.own_object_id(),
                    await self.systems.scm_tokens.own_object_id(),
                }
            )
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.engine.activity.close()
        await self.systems.close()
        await self.queue.close()
        await self.state.close()
