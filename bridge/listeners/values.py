"""Shared pure helpers of both listeners: WCF dates, timestamps, the mapping lookup protocol."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from typing import Any, Protocol

from bridge.core.errors import PayloadError
from bridge.core.mapping import EntityMap

ZERO_GUID = "00000000-0000-0000-0000-000000000000"
# "/Date(1506384247000)/" or "/Date(1506409448000-0700)/": milliseconds since the epoch (UTC);
# the offset only says where the writer was, so it does not change the instant.
_WCF_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


class MappingLookup(Protocol):
    """What the listeners need of ``bridge.core.mapping.MappingSet``."""

    def by_cds_logical_name(self, logical_name: str) -> EntityMap | None: ...

    def by_scm_event_name(self, primary_entity_name: str) -> EntityMap | None: ...


def wcf_date(value: str) -> datetime | None:
    """Parse a WCF JSON date; None when ``value`` is not one."""
    match = _WCF_DATE.match(value)
    if match is None:
        return None
    try:
        return datetime.fromtimestamp(int(match.group(1)) / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def iso_z(moment: datetime) -> str:
    """The Web API read form of a datetime: 'YYYY-MM-DDTHH:MM:SSZ' (UTC, whole seconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def wcf_iso(value: str) -> str | None:
    """``iso_z(wcf_date(value))``; None when ``value`` is not a WCF date."""
    # Most strings are not dates: reject them before the cache so they do not crowd it out.
    return _wcf_iso(value) if value.startswith("/Date(") else None


# The same modifiedon/createdon text repeats across Target, images and changes, and the
# conversion (regex, fromtimestamp, strftime) is a pure function of it: remember recent ones.
@functools.lru_cache(maxsize=1024)
def _wcf_iso(value: str) -> str | None:
    moment = wcf_date(value)
    return None if moment is None else iso_z(moment)


def parse_timestamp(value: Any, where: str) -> datetime | None:
    """A source timestamp from an ISO 8601 string or a WCF date; None if absent; 400 if malformed."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        moment = wcf_date(value)
        if moment is not None:
            return moment
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None:
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise PayloadError(f"{where}: not a timestamp: {value!r}")


def is_empty_guid(value: str | None) -> bool:
    return not value or value == ZERO_GUID
