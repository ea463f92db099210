"""One change event as one Service Bus message, and back: the ids, the properties, the body."""

from __future__ import annotations

import hashlib
from typing import Any

from azure.servicebus import ServiceBusMessage

from bridge.core.events import ChangeEvent

_MAX_ID = 128  # Service Bus's limit on message and session ids


def bounded(value: str, keep: str = "") -> str:
    """``value`` if within the id limit, else ``keep`` + a digest of it (the same value, the same id)."""
    if len(value) <= _MAX_ID:
        return value
    return f"{keep}#{hashlib.sha256(value.encode()).hexdigest()}"


def session_of(event: ChangeEvent) -> str:
    """The record key, or for a very long one its map's name and a digest (the map stays readable)."""
    return bounded(event.record_key, keep=f"{event.entity}|")


def entity_of(session_id: str) -> str:
    """The map a session belongs to (record keys and session ids begin with ``entity|``)."""
    return session_id.split("|", 1)[0]


def message_of(event: ChangeEvent, *, message_id: str | None = None) -> ServiceBusMessage:
    """The message of one event; its trace context also in the application properties, so a broker-side
    tool or another consumer sees the trace (``Diagnostic-Id`` is the Azure SDKs' own name for it)."""
    props: dict[str | bytes, Any] = {"entity": event.entity, "event_id": event.event_id}
    props.update(event.trace_context)
    if "traceparent" in event.trace_context:
        props["Diagnostic-Id"] = event.trace_context["traceparent"]
    return ServiceBusMessage(
        event.model_dump_json(),
        session_id=session_of(event),
        message_id=bounded(message_id or event.event_id),
        correlation_id=event.correlation_id or None,
        content_type="application/json",
        subject=event.entity,
        application_properties=props,
    )


def body_of(message: Any) -> bytes:
    """A received message's body: bytes, or (the SDK's data body) an iterable of bytes sections."""
    body = message.body
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    return b"".join(bytes(part) for part in body)
