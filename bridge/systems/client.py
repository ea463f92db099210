"""What both service clients share: their HTTP client, their lifecycle, and change-set ``$batch``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Self

from bridge.systems.batch import (
    BatchOperation,
    BatchResult,
    build_changeset,
    parse_batch_response,
    raise_for_batch,
)
from bridge.systems.http import HttpClient, RetryPolicy, TokenSource
from bridge.systems.transport import Transport


class ServiceClient:
    """Base of ``DataverseClient`` and ``FnoClient``; ``system`` is "cds" or "scm". ``transport``:
    where requests go (default: the network, over aiohttp; ``MockTransport`` in unit tests)."""

    system: ClassVar[str]

    def __init__(
        self,
        base_url: str,
        tokens: TokenSource,
        *,
        ca_file: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.http = HttpClient(
            self.system, base_url, tokens, transport=transport, ca_file=ca_file, timeout=timeout, retry=retry
        )

    async def close(self) -> None:
        await self.http.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def batch(self, operations: Sequence[BatchOperation]) -> list[BatchResult]:
        """Run ``operations`` as one change set: all apply or none. Raises the first failure."""
        content_type, body = build_changeset(self.http.base_url, operations)
        resp = await self.http.request("POST", "$batch", raw_body=body, content_type=content_type)
        results = parse_batch_response(resp.headers.get("Content-Type", ""), resp.text)
        raise_for_batch(self.system, results, len(operations))
        return results
