"""The lookups the Dataverse listener needs for events that lack company or key (the systems' clients
implement them). The listeners hand events to the engine through ``bridge.engine.ports.EventSink``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol


class CompanyDirectory(Protocol):
    async def code_for_cds_company(self, company_id: str) -> str | None:
        """The company code of a ``cdm_company`` GUID, None if unknown."""
        ...


# (entity_set, record id) -> the row in Web API read form, or None when it does not exist.
FetchCdsRecord = Callable[[str, str], Awaitable[dict[str, Any] | None]]
