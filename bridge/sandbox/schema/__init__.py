"""Table definitions of both emulated systems: columns, types, limits, keys and references.

The single source of truth for the emulators' storage, validation and notification payloads.
Split by job: ``columns`` (the ``Kind``/``Column``/``Table`` types), ``dataverse`` and ``fno`` (the
tables). Every name importable from ``bridge.sandbox.schema`` before the split still is.

Names follow Microsoft's published dual-write maps for these five entities
(``tests/fidelity/published/``; the differences we keep on purpose are listed in
``tests/fidelity/deliberate.py`` and docs/mappings.md).

Representation on the wire (Web API JSON):
- Dataverse: option sets as int, booleans as bool, dates (``date``) as "YYYY-MM-DD", ``datetime`` as
  ISO 8601 UTC "YYYY-MM-DDTHH:MM:SSZ", decimals/money as numbers, lookups written with
  ``<nav>@odata.bind`` and read as ``_<column>_value`` (GUID string).
- F&O: enums as their labels (strings), NoYes as "Yes"/"No", dates as ISO 8601 datetimes
  "YYYY-MM-DDT00:00:00Z" with 1900-01-01 as the empty date, references as plain id strings.
"""

from __future__ import annotations

from bridge.sandbox.schema.columns import DT, B, Column, D, G, I, Kind, M, S, Table, table_by_set
from bridge.sandbox.schema.dataverse import (
    DATAVERSE_REGISTRATION_TABLES,
    DATAVERSE_TABLES,
    DV_PAYMENT_METHOD,
    DV_WAREHOUSE_TYPE,
)
from bridge.sandbox.schema.fno import FNO_TABLES, FO_NOYES, FO_PAYMENT_METHOD, FO_WAREHOUSE_TYPE

__all__ = [
    "DATAVERSE_REGISTRATION_TABLES",
    "DATAVERSE_TABLES",
    "DT",
    "DV_PAYMENT_METHOD",
    "DV_WAREHOUSE_TYPE",
    "FNO_TABLES",
    "FO_NOYES",
    "FO_PAYMENT_METHOD",
    "FO_WAREHOUSE_TYPE",
    "B",
    "Column",
    "D",
    "G",
    "I",
    "Kind",
    "M",
    "S",
    "Table",
    "table_by_set",
]
