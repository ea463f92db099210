"""Pydantic models of the ``RemoteExecutionContext`` JSON both systems send (pure).

Tolerant of keys we do not use (``extra="ignore"``: dropped, not copied, since nothing reads them and
copying them costs CPU on every webhook), strict about the ones we do: their JSON types must be exact
(a ``"1"`` where an int belongs is a 400, not a silent coercion).
"""

from __future__ import annotations

from typing import Any, NotRequired, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator
from typing_extensions import TypedDict  # pydantic needs this one's TypedDict before Python 3.12

from bridge.core.errors import PayloadError

ENTITY_TYPE = "Entity:http://schemas.microsoft.com/xrm/2011/Contracts"

M = TypeVar("M", bound=BaseModel)


class KeyValue(TypedDict):
    """One entry of a serialised .NET collection: ``{"key": ..., "value": ...}``. A TypedDict, not a
    model: a Dataverse body has dozens of entries, and checking them as plain dicts (other keys
    dropped, as with the models) costs about half as much as building a model for each."""

    key: StrictStr
    value: NotRequired[Any]


class WireEntity(BaseModel):
    model_config = ConfigDict(extra="ignore")

    LogicalName: StrictStr
    Id: StrictStr | None = None
    Attributes: list[KeyValue] = Field(default_factory=list)

    def attributes(self) -> dict[str, Any]:
        return {kv["key"]: kv.get("value") for kv in self.Attributes}


class WireReference(BaseModel):
    model_config = ConfigDict(extra="ignore")

    LogicalName: StrictStr
    Id: StrictStr


class Context(BaseModel):
    """The keys of ``RemoteExecutionContext`` the bridge reads."""

    model_config = ConfigDict(extra="ignore")

    MessageName: StrictStr
    PrimaryEntityName: StrictStr
    PrimaryEntityId: StrictStr | None = None
    Mode: StrictInt = 1
    Depth: StrictInt = 1
    CorrelationId: StrictStr | None = None
    RequestId: StrictStr | None = None
    OperationId: StrictStr | None = None
    InitiatingUserId: StrictStr | None = None
    UserId: StrictStr | None = None
    OperationCreatedOn: StrictStr | None = None
    InputParameters: list[KeyValue] = Field(default_factory=list)
    PreEntityImages: list[KeyValue] = Field(default_factory=list)
    PostEntityImages: list[KeyValue] = Field(default_factory=list)

    @field_validator("InputParameters", "PreEntityImages", "PostEntityImages", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    def parameter(self, name: str) -> Any:
        return next((kv.get("value") for kv in self.InputParameters if kv["key"] == name), None)

    @staticmethod
    def first_image(images: list[KeyValue], where: str) -> WireEntity | None:
        """The first image (aliases vary by registration); None when none was registered."""
        first = images[0].get("value") if images else None
        if first is None:
            return None
        return validate(WireEntity, first, where)


class DataEventContext(Context):
    """An F&O data event: the context plus the business-event header fields."""

    EventId: StrictStr = Field(min_length=1)
    BusinessEventId: StrictStr | None = None
    EventTime: StrictStr | None = None
    EventTimeIso8601: StrictStr | None = None
    ControlNumber: StrictInt | None = None
    BusinessEventLegalEntity: StrictStr | None = None
    InitiatingUserAADObjectId: StrictStr | None = None


def describe(exc: ValidationError, prefix: str = "") -> str:
    """'InputParameters.0.value.Attributes: Input should be a valid list; Mode: ...' (first 5)."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        parts.append(f"{loc or '<body>'}: {err['msg']}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def validate(model: type[M], data: Any, where: str = "") -> M:
    """Validate or raise ``PayloadError`` naming each problem's location."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise PayloadError(describe(exc, where)) from None
