"""What the Service Bus queue uses of the ``azure-servicebus`` aio SDK, typed here (mypy does not check
``azure.*``): ``azure.servicebus.aio.ServiceBusClient`` and the fake (bridge.queue.servicebus_fake)
both fit these protocols, so the adapter takes either by injection."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from azure.servicebus import ServiceBusMessage


class SbReceivedMessage(Protocol):
    """``azure.servicebus.ServiceBusReceivedMessage``: the attributes the adapter reads."""

    @property
    def message_id(self) -> str | None: ...
    @property
    def session_id(self) -> str | None: ...
    @property
    def body(self) -> Any: ...  # bytes, or an iterable of bytes sections
    @property
    def application_properties(self) -> dict[Any, Any] | None: ...
    @property
    def sequence_number(self) -> int | None: ...
    @property
    def delivery_count(self) -> int | None: ...
    @property
    def enqueued_time_utc(self) -> datetime | None: ...
    @property
    def dead_letter_reason(self) -> str | None: ...
    @property
    def dead_letter_error_description(self) -> str | None: ...


class SbSession(Protocol):
    """``azure.servicebus.aio.ServiceBusSession``."""

    @property
    def session_id(self) -> str: ...
    async def renew_lock(self, *, timeout: float | None = None) -> datetime: ...
    async def get_state(self, *, timeout: float | None = None) -> bytes: ...
    async def set_state(
        self, state: str | bytes | bytearray | None, *, timeout: float | None = None
    ) -> None: ...


class SbReceiver(Protocol):
    """``azure.servicebus.aio.ServiceBusReceiver`` (peek-lock)."""

    async def __aenter__(self) -> Any: ...
    async def close(self) -> None: ...
    @property
    def session(self) -> SbSession: ...
    async def receive_messages(
        self, max_message_count: int | None = 1, max_wait_time: float | None = None
    ) -> list[Any]: ...
    async def peek_messages(self, max_message_count: int = 1, *, sequence_number: int = 0) -> list[Any]: ...
    async def complete_message(self, message: Any) -> None: ...
    async def abandon_message(self, message: Any) -> None: ...
    async def dead_letter_message(
        self, message: Any, reason: str | None = None, error_description: str | None = None
    ) -> None: ...


class SbSender(Protocol):
    """``azure.servicebus.aio.ServiceBusSender``."""

    async def send_messages(self, message: ServiceBusMessage | Iterable[ServiceBusMessage]) -> None: ...
    async def close(self) -> None: ...


class SbClient(Protocol):
    """``azure.servicebus.aio.ServiceBusClient``."""

    def get_queue_sender(self, queue_name: str) -> Any: ...
    def get_queue_receiver(
        self,
        queue_name: str,
        *,
        session_id: Any = None,
        sub_queue: Any = None,
        max_wait_time: float | None = None,
    ) -> Any: ...
    async def close(self) -> None: ...


class SbQueueRuntime(Protocol):
    @property
    def active_message_count(self) -> int | None: ...


class SbAdmin(Protocol):
    """``azure.servicebus.aio.management.ServiceBusAdministrationClient``: the queue's figures."""

    async def get_queue_runtime_properties(self, queue_name: str) -> Any: ...
    async def close(self) -> None: ...
