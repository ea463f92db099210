"""The two system clients and their token providers, built from ``Settings``: the serve process and
its apply processes (``bridge.engine.applyproc``) connect the same way. Here the parts of a client
are put together: its transport (the network), and the write coalescer when ``[sync]
coalesce_writes`` asks for it (``coalesced``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from bridge.settings import Settings
from bridge.systems.auth import TokenProvider
from bridge.systems.client import ServiceClient
from bridge.systems.coalesce import WriteCoalescer
from bridge.systems.dataverse import DataverseClient
from bridge.systems.fno import FnoClient


@dataclass
class Systems:
    cds_tokens: TokenProvider
    scm_tokens: TokenProvider
    cds: DataverseClient
    scm: FnoClient

    async def close(self) -> None:
        await self.cds.close()
        await self.scm.close()

    def request_counts(self) -> dict[str, dict[str, int]]:
        """What each client has sent since start, by system (the dashboard's request figures)."""
        return {"cds": client_counts(self.cds), "scm": client_counts(self.scm)}


Client = TypeVar("Client", bound=ServiceClient)


def coalesced(client: Client) -> Client:
    """``client``, its concurrent writes now travelling together as ``$batch`` requests."""
    http = client.http
    http.coalescer = WriteCoalescer(
        system=http.system, base_url=http.base_url, send_one=http.send_one, send_batch=http.send_batch
    )
    return client


def client_counts(client: ServiceClient) -> dict[str, int]:
    """Requests on the wire (retries included), the ``$batch`` requests among them, the writes those
    carried, and batches sent again one write at a time (``bridge.metrics.RequestCounts``)."""
    http, co = client.http, client.http.coalescer
    return {
        "requests": http.requests_sent,
        "batches": co.batches_sent if co else 0,
        "batched_writes": co.operations_batched if co else 0,
        "batch_fallbacks": co.fallbacks if co else 0,
    }


def connect_systems(settings: Settings, client_secret: str) -> Systems:
    """Clients for both systems (no I/O yet: tokens and connections come on first use)."""
    ca_file = str(settings.auth.ca_file) if settings.auth.ca_file else None
    auth = settings.auth
    cds_tokens = TokenProvider(
        auth.authority, auth.client_id, client_secret, settings.cds.scope, ca_file=ca_file
    )
    scm_tokens = TokenProvider(
        auth.authority, auth.client_id, client_secret, settings.scm.scope, ca_file=ca_file
    )
    timeout = settings.sync.request_timeout_s
    cds = DataverseClient(settings.cds.url, cds_tokens, ca_file=ca_file, timeout=timeout)
    scm = FnoClient(settings.scm.url, scm_tokens, ca_file=ca_file, timeout=timeout)
    if settings.sync.coalesce_writes:
        cds, scm = coalesced(cds), coalesced(scm)
    return Systems(cds_tokens=cds_tokens, scm_tokens=scm_tokens, cds=cds, scm=scm)
