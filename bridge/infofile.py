"""``--sandbox INFO_FILE``: the bridge's settings from the JSON file ``dualwrite sandbox --info-file``
writes, so every command that talks to the systems can be tried on the emulators in one line.

The file holds the systems' URLs and scopes, the token authority, the bridge's client id and secret
and the sandbox's CA. What it does not hold is read from the environment (``DUALWRITE_*``, as with
``--config``) or, if not set there, generated once per sandbox run and kept beside the bridge's
data (owner-only), so ``serve`` and a later ``sync`` command agree on it: the two webhook keys and
the admin token. The bridge's data directory is one per sandbox run (the emulators start empty, so
an earlier run's ledger would be wrong), beside the info file unless ``DUALWRITE_STORAGE__DATA_DIR``
says otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from bridge.core.errors import ConfigError
from bridge.settings import Settings, load_settings

if TYPE_CHECKING:  # the CLI imports this module for its arguments: the rest comes when used
    from bridge.core.mapping import MappingSet
    from bridge.systems.dataverse import DataverseClient

SECRETS_FILE = "sandbox-secrets.json"
# The secrets a sandbox run generates when the environment does not set them.
GENERATED = ("cds_webhook_key", "scm_webhook_key", "admin_token")
ENDPOINT_ID = "dualwrite-bridge"  # the F&O data event endpoint's id: registering again replaces it


class SandboxFile(BaseModel):
    """What the bridge reads of the info file (bridge/sandbox/runtime.py ``SandboxInfo``)."""

    model_config = ConfigDict(extra="ignore")

    authority: str
    client_id: str
    client_secret: str
    cds_url: str
    cds_scope: str
    scm_url: str
    scm_scope: str
    ca_file: str
    admin_key: str
    admin_header: str = "x-sandbox-admin-key"
    scm_admin_url: str


@dataclass(frozen=True)
class SandboxSettings:
    settings: Settings
    info: SandboxFile
    generated: dict[str, str] = field(default_factory=dict)  # name -> value, made for this run

    def banner(self) -> str:
        """The generated secrets, one line each (printed: nobody else knows them)."""
        return "\n".join(f"  {name:<16} {value}   (generated)" for name, value in self.generated.items())


def read_info(path: Path) -> SandboxFile:
    try:
        return SandboxFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise ConfigError(
            "sandbox info file not found (dualwrite sandbox --info-file)", file=str(path)
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not a JSON info file: {exc}", file=str(path)) from exc
    except ValidationError as exc:
        missing = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        raise ConfigError(f"not a sandbox info file (missing {missing})", file=str(path)) from exc


def run_data_dir(path: Path, info: SandboxFile) -> Path:
    """One directory per sandbox run: a run is its origin and its admin key (new at each start)."""
    run = hashlib.sha256(f"{info.cds_url}\n{info.admin_key}".encode()).hexdigest()[:12]
    return path.resolve().parent / f"bridge-{run}"


def sandbox_settings(path: Path) -> SandboxSettings:
    """The bridge's ``Settings`` for the sandbox described by the info file at ``path``."""
    from bridge.demo import default_mappings_dir

    info = read_info(path)
    base = {
        "cds": {"url": info.cds_url, "scope": info.cds_scope},
        "scm": {"url": info.scm_url, "scope": info.scm_scope},
        "auth": {"authority": info.authority, "client_id": info.client_id, "ca_file": info.ca_file},
        "storage": {"data_dir": run_data_dir(path, info)},
        "mappings_dir": default_mappings_dir(),
        "client_secret": SecretStr(info.client_secret),
    }
    # The environment outranks these (as it outranks a config file): first see where the data lives.
    first = load_settings(None, **base)
    data_dir = first.storage.data_dir
    kept = _kept_secrets(data_dir)
    settings = load_settings(None, **base, **{name: SecretStr(value) for name, value in kept.items()})
    # Printed: whoever tries the sandbox needs them (those the environment set, they know).
    generated = {n: v for n, v in kept.items() if getattr(settings, n).get_secret_value() == v}
    return SandboxSettings(settings=settings, info=info, generated=generated)


def _kept_secrets(data_dir: Path) -> dict[str, str]:
    """This run's generated secrets: read back, or made now and kept (owner-only)."""
    path = data_dir / SECRETS_FILE
    kept: dict[str, str] = {}
    if path.is_file():
        kept = {k: str(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items() if k in GENERATED}
    missing = [name for name in GENERATED if name not in kept]
    if missing:
        kept.update({name: secrets.token_urlsafe(24) for name in missing})
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(kept, fh)
    return kept


def client_context(info: SandboxFile) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=info.ca_file)


async def add_scm_endpoint(info: SandboxFile, bridge_url: str, key: str) -> None:
    """Point the emulated F&O's data events at ``bridge_url`` through the sandbox admin API (a real
    F&O is configured by hand: ``bridge.register.scm_endpoint_instructions``)."""
    import aiohttp

    body: dict[str, Any] = {
        "id": ENDPOINT_ID,
        "name": "dualwrite bridge",
        "url": f"{bridge_url.rstrip('/')}/webhooks/scm",
        "headers": {"x-dualwrite-key": key},
    }
    headers = {info.admin_header: info.admin_key}
    connector = aiohttp.TCPConnector(ssl=client_context(info))
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.post(f"{info.scm_admin_url}/dataevents/endpoints", json=body, headers=headers) as resp,
    ):
        if resp.status != 201:
            raise ConfigError(
                f"the sandbox refused the data event endpoint: {resp.status} {await resp.text()}"
            )


# ---------------------------------------------------------------- the commands' --config / --sandbox


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` or ``--sandbox INFO_FILE``: which systems a command talks to."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--config", type=Path, help="TOML settings file (docs/configuration.md)")
    group.add_argument(
        "--sandbox",
        type=Path,
        metavar="INFO_FILE",
        help="the emulators the info file of 'dualwrite sandbox --info-file' describes, instead of --config",
    )


def target_of(args: argparse.Namespace) -> tuple[Settings, SandboxSettings | None]:
    """The settings the arguments choose, and the sandbox's when ``--sandbox`` chose them."""
    if getattr(args, "sandbox", None) is not None:
        chosen = sandbox_settings(args.sandbox)
        return chosen.settings, chosen
    return load_settings(args.config), None


async def serve_sandbox(chosen: SandboxSettings, *, mode: Literal["sync", "async"] = "sync") -> int:
    """``dualwrite serve --sandbox``: the bridge, its webhooks registered on both emulators."""
    from bridge.app import Bridge, run_until_stopped
    from bridge.runtime import settle_heap
    from bridge.telemetry import configure_export

    settings = chosen.settings
    configure_export(settings.telemetry)
    async with Bridge(settings) as bridge:
        await register_on_sandbox(chosen, bridge.cds, bridge.mappings, bridge.url, mode=mode)
        print(
            f"dualwrite bridge on {bridge.url} (dashboard {bridge.url}/), webhooks registered on the"
            f" sandbox ({mode} Dataverse steps); data in {settings.storage.data_dir}",
            flush=True,
        )
        if chosen.generated:
            print(chosen.banner(), flush=True)
        settle_heap(settings.gc_gen0_threshold)
        await run_until_stopped()
    return 0


async def register_on_sandbox(
    chosen: SandboxSettings,
    cds: DataverseClient,
    mappings: MappingSet,
    bridge_url: str,
    *,
    mode: Literal["sync", "async"] = "sync",
) -> int:
    """The bridge's Dataverse steps through the Web API (as ``register`` does) and its F&O data
    event endpoint through the sandbox admin API. Returns the number of Dataverse steps."""
    from bridge.register import register_webhooks

    settings = chosen.settings
    reg = await register_webhooks(
        cds,
        mappings,
        webhook_url=f"{bridge_url.rstrip('/')}/webhooks/cds",
        webhook_key=settings.webhook_keys("cds")[0],
        mode=mode,
    )
    await add_scm_endpoint(chosen.info, bridge_url, settings.webhook_keys("scm")[0])
    return len(reg.steps)


async def register_sandbox(
    chosen: SandboxSettings, *, webhook_url: str | None, mode: Literal["sync", "async"]
) -> int:
    """``dualwrite register --sandbox``: both emulators' registrations for a bridge at
    ``--webhook-url`` (…/webhooks/cds), else ``listen.public_url``, else where it listens."""
    from bridge.core.mapping import load_mappings
    from bridge.systems.auth import TokenProvider
    from bridge.systems.dataverse import DataverseClient

    settings = chosen.settings
    if webhook_url is not None:
        bridge_url = webhook_url.rsplit("/webhooks/", 1)[0]
    else:
        bridge_url = settings.listen.public_url or f"http://{settings.listen.host}:{settings.listen.port}"
    ca_file = str(settings.auth.ca_file) if settings.auth.ca_file else None
    tokens = TokenProvider(
        settings.auth.authority,
        settings.auth.client_id,
        settings.client_secret.get_secret_value(),
        settings.cds.scope,
        ca_file=ca_file,
    )
    async with DataverseClient(settings.cds.url, tokens, ca_file=ca_file) as client:
        steps = await register_on_sandbox(
            chosen, client, load_mappings(settings.mappings_dir), bridge_url, mode=mode
        )
    print(f"Dataverse: webhook {bridge_url}/webhooks/cds registered ({steps} steps)")
    print(f"Finance and Operations: data event endpoint {bridge_url}/webhooks/scm registered")
    if chosen.generated:
        print(chosen.banner())
    return 0
