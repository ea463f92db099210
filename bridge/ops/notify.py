"""Alert webhooks: POST an alert's text to a Teams or Slack incoming webhook.

The body is ``{"text": "..."}``, which both accept (Slack: "Sending messages using incoming
webhooks"; Teams: the incoming webhook connector's simplest card). TLS is verified (aiohttp's
default context, never turned off), each call has a timeout, and a failure is logged, never raised:
an alert that cannot be delivered must not stop the bridge, and the log says why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp

from bridge.ops.alerts import redacted_url

log = logging.getLogger(__name__)
TIMEOUT_S = 10.0

Notify = Callable[[str, str], Coroutine[Any, Any, bool]]  # (url, text) -> delivered


class WebhookNotifier:
    def __init__(self, *, timeout_s: float = TIMEOUT_S) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, url: str, text: str) -> bool:
        """Deliver ``text``; True when the webhook answered 2xx."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(url, json={"text": text}) as response:
                if 200 <= response.status < 300:
                    return True
                said = (await response.text())[:300]
                log.error("alert webhook %s answered %d: %s", redacted_url(url), response.status, said)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.error("alert webhook %s not reached: %s: %s", redacted_url(url), type(exc).__name__, exc)
        return False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
