"""Value maps: how one mapped column's value changes form between Dataverse and F&O.

Every map works in three steps, so the ledger, the rules and the engine share one comparable form:

- ``normalise(side, raw)``: a value as read from ``side`` (Web API JSON) -> its comparable form on that
  side (what ``EntityMap.project`` returns and the ledger stores);
- ``convert(source, value)``: a normalised source value -> the normalised value for the other side;
- ``write(side, value)``: a normalised value -> the JSON a write to ``side`` sends.

A value that cannot be converted (an enum label the table lacks, a malformed date) raises
``RejectedError``: the change cannot be applied and retrying will not help.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from bridge.core.errors import RejectedError
from bridge.core.events import System

#: F&O's empty date: what F&O stores and returns for "no date".
FNO_EMPTY_DATE = "1900-01-01T00:00:00Z"

_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:$|T)")
_MIDNIGHT = re.compile(r"^\d{4}-\d{2}-\d{2}T00:00(?::00(?:\.0+)?)?(?:Z|[+-]00:?00)?$")


def _reject(map_name: str, side: System, value: Any, why: str) -> RejectedError:
    return RejectedError(f"value map '{map_name}': {value!r} from {side.value} {why}", code="value-map")


class ValueMap(Protocol):
    name: str

    def normalise(self, side: System, value: Any) -> Any: ...

    def convert(self, source: System, value: Any) -> Any: ...

    def write(self, side: System, value: Any) -> Any: ...


class CopyMap:
    """Plain copy. An empty string counts as null on both sides (F&O has no null strings)."""

    name = "copy"

    def normalise(self, side: System, value: Any) -> Any:
        return None if value == "" else value

    def convert(self, source: System, value: Any) -> Any:
        return value

    def write(self, side: System, value: Any) -> Any:
        # F&O OData strings are not nullable: an empty value travels as "".
        if value is None and side is System.SCM:
            return ""
        return value


class NumberMap:
    """Integers and decimals: 5, 5.0 and "5.00" are one value; integral values become ints.

    An empty Dataverse number becomes 0 on F&O: X++ integers and reals have no empty value.
    """

    name = "number"

    def normalise(self, side: System, value: Any) -> Any:
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise _reject(self.name, side, value, "is not a number")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise _reject(self.name, side, value, "is not a number") from None
        if not number.is_finite():
            raise _reject(self.name, side, value, "is not a finite number")
        # JSON-ready: the ledger stores projections as JSON.
        return int(number) if number == number.to_integral_value() else float(number)

    def convert(self, source: System, value: Any) -> Any:
        return value

    def write(self, side: System, value: Any) -> Any:
        if value is None and side is System.SCM:
            return 0
        return value


class OptionalNumberMap(NumberMap):
    """A number F&O stores as 0 when it is not set (X++ has no empty number), e.g. a model year:
    F&O 0 <-> Dataverse null, both ways, so an unset F&O value is not sent as a real 0."""

    name = "optional_number"

    def normalise(self, side: System, value: Any) -> Any:
        number = super().normalise(side, value)
        return None if side is System.SCM and number == 0 else number


class NumberTextMap(NumberMap):
    """An F&O text property holding a number <-> a Dataverse number, e.g. a model year: F&O's
    ``ModelYear`` is ``Edm.String`` in its OData metadata. ``"2020"`` <-> ``2020``; F&O ``""`` (its
    empty string) <-> Dataverse null. A number is written to F&O as its digits, never as a JSON
    number (OData refuses a number for a string property)."""

    name = "number_text"

    def normalise(self, side: System, value: Any) -> Any:
        if side is System.SCM and value is not None and not isinstance(value, str):
            raise _reject(self.name, side, value, "is not text")
        return super().normalise(side, value)

    def write(self, side: System, value: Any) -> Any:
        if side is System.SCM:
            return "" if value is None else str(value)
        return value


class NoYesMap:
    """F&O NoYes ("Yes"/"No") <-> Dataverse two-option (true/false).

    A null Dataverse boolean becomes "No": F&O has no empty NoYes value.
    """

    name = "noyes"

    def normalise(self, side: System, value: Any) -> Any:
        if value is None:
            return None
        if side is System.CDS:
            if isinstance(value, bool):
                return value
            raise _reject(self.name, side, value, "is not a boolean")
        if value in ("Yes", "No"):
            return value
        raise _reject(self.name, side, value, "is not 'Yes' or 'No'")

    def convert(self, source: System, value: Any) -> Any:
        if source is System.CDS:
            return "Yes" if value else "No"
        return None if value is None else value == "Yes"

    def write(self, side: System, value: Any) -> Any:
        return value


class DateMap:
    """Dataverse date-only "YYYY-MM-DD" <-> F&O "YYYY-MM-DDT00:00:00Z"; F&O's 1900-01-01 <-> null.

    On F&O the normalised form of the empty date is None (data events leave null dates out, OData
    returns 1900-01-01); writing None to F&O sends 1900-01-01.
    """

    name = "date"

    def normalise(self, side: System, value: Any) -> Any:
        if value is None or value == "":
            return None
        match = _DATE.match(value) if isinstance(value, str) else None
        if match is None:
            raise _reject(self.name, side, value, "is not a date")
        day = match.group(1)
        if side is System.CDS:
            return day
        if not _MIDNIGHT.match(value):
            raise _reject(self.name, side, value, "is not a date at midnight UTC")
        return None if day == "1900-01-01" else f"{day}T00:00:00Z"

    def convert(self, source: System, value: Any) -> Any:
        if value is None:
            return None
        return f"{value}T00:00:00Z" if source is System.CDS else str(value)[:10]

    def write(self, side: System, value: Any) -> Any:
        if value is None and side is System.SCM:
            return FNO_EMPTY_DATE
        return value


class EnumMap:
    """F&O enum label <-> Dataverse option-set integer, by a table declared in the mapping file."""

    def __init__(self, name: str, labels_to_options: Mapping[str, int]) -> None:
        self.name = name
        self.to_option = dict(labels_to_options)
        self.to_label = {option: label for label, option in self.to_option.items()}

    def normalise(self, side: System, value: Any) -> Any:
        if value is None or value == "":
            return None
        if side is System.CDS:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            raise _reject(self.name, side, value, "is not an option-set integer")
        if isinstance(value, str):
            return value
        raise _reject(self.name, side, value, "is not an enum label")

    def convert(self, source: System, value: Any) -> Any:
        if value is None:
            return None
        table: Mapping[Any, Any] = self.to_label if source is System.CDS else self.to_option
        if value not in table:
            raise _reject(self.name, source, value, "has no counterpart in the value map")
        return table[value]

    def write(self, side: System, value: Any) -> Any:
        return value


BUILTIN_MAPS: dict[str, ValueMap] = {
    m.name: m for m in (CopyMap(), NumberMap(), OptionalNumberMap(), NumberTextMap(), NoYesMap(), DateMap())
}
