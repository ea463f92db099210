"""What the Web API's extra endpoints (``bulk``, ``resources``) need of the Dataverse service.

A Protocol instead of the service class itself, so those modules do not import ``service`` (which
imports them): the import graph stays free of circles (tests/test_layering.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from bridge.sandbox.dataverse.codec import DvCodec
from bridge.sandbox.dataverse.errors import DvError
from bridge.sandbox.dataverse.rows import RowWriter
from bridge.sandbox.metadata.query import EntityDefinitions
from bridge.sandbox.odata.keys import Key
from bridge.sandbox.odata.ops import CallContext, Unit
from bridge.sandbox.schema import Table
from bridge.sandbox.store import Store, TableStore


class Plugins(Protocol):
    """Field Service's plug-ins (``fieldservice.FieldServicePlugins``) around every row write."""

    def prepare(
        self, ts: TableStore, values: Mapping[str, Any], existing: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]: ...

    async def after_write(
        self,
        unit: Unit,
        ctx: CallContext,
        ts: TableStore,
        pre: Mapping[str, Any] | None,
        post: Mapping[str, Any] | None,
    ) -> None: ...


class DataverseHost(Protocol):
    organization_id: str
    business_unit_id: str
    tables: dict[str, Table]
    codecs: dict[str, DvCodec]
    writer: RowWriter
    store: Store
    plugins: Plugins
    entity_definitions: EntityDefinitions

    def _bind(self, entity_set: str, key: Key) -> str: ...

    def _find(
        self, ts: TableStore, key: Key, *, writer: bool
    ) -> tuple[dict[str, Any], dict[str, Any], int] | None: ...

    def _key_where(self, ts: TableStore, key: Key) -> dict[str, Any]: ...

    def _missing(self, ts: TableStore, key: Key) -> DvError: ...

    async def _notify(
        self,
        unit: Unit,
        ctx: CallContext,
        ts: TableStore,
        message: str,
        pre: dict[str, Any] | None,
        post: dict[str, Any] | None,
        changed: dict[str, Any],
        *,
        depth: int = 1,
    ) -> None: ...
