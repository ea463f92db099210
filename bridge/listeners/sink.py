"""The seam between the listeners and the rest of the bridge (the queue in async mode, the writer in
sync mode), and the lookups the Dataverse listener needs for events that lack company or key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.core.events import ChangeEvent


@dataclass(frozen=True, slots=True)
class SinkResult:
    """How a submitted event fared; ``status`` becomes the webhook's HTTP answer.

    E.g. 202 durable (async), 200 applied (sync), 502 rejected by the other system (sync: Dataverse
    rolls back), 503 queue unavailable or the sync budget spent."""

    accepted: bool
    status: int
    message: str = ""


class EventSink(Protocol):
    async def submit(self, event: ChangeEvent) -> SinkResult:
        """Async mode: return once the event is durable. Sync mode: once applied or failed."""
        ...


class CompanyDirectory(Protocol):
    async def code_for_cds_company(self, company_id: str) -> str | None:
        """The company code of a ``cdm_company`` GUID, None if unknown."""
        ...


# (entity_set, record id) -> the row in Web API read form, or None when it does not exist.
FetchCdsRecord = Callable[[str, str], Awaitable[dict[str, Any] | None]]
