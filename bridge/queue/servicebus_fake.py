"""A fake Azure Service Bus at the SDK's class level, for tests (like httpx's MockTransport).

``FakeServiceBusClient`` stands where ``azure.servicebus.aio.ServiceBusClient`` stands, with the same
method names and keywords (``get_queue_sender``, ``get_queue_receiver(session_id=…, sub_queue=…,
max_wait_time=…)``, ``close``), and raises the SDK's own exceptions
(``azure.servicebus.exceptions``). Several clients on one ``FakeNamespace`` are several replicas on one
namespace. What it enforces, as the broker does (each rule has a test in tests/queue/test_servicebus_fake.py):

- **One receiver per session.** Accepting a session someone holds raises ``SessionCannotBeLockedError``;
  ``NEXT_AVAILABLE_SESSION`` with no free session raises ``OperationTimeoutError`` after ``max_wait_time``.
  The free session handed out is the one whose oldest message is oldest (the broker does not document
  its choice; this one is deterministic).
- **Locks expire.** A session lock lasts ``lock_duration_s`` unless renewed (``session.renew_lock()``);
  then the session is free again, its received messages unlocked, and settling one raises
  ``SessionLockLostError`` (the dead-letter sub-queue, which has no sessions, locks each message:
  ``MessageLockLostError``).
- **Delivery count and the dead-letter sub-queue.** Each receive counts a delivery; a message abandoned
  (or whose lock ran out, or whose receiver closed) after ``max_delivery_count`` deliveries moves to the
  dead-letter sub-queue with reason ``MaxDeliveryCountExceeded``. ``dead_letter_message`` moves it with
  the caller's reason and description. Sequence number and enqueue time stay with the message.
- **Duplicate detection.** A ``message_id`` sent again within ``duplicate_window_s`` of its first send is
  dropped silently (the sender is told nothing, as with the real broker).

Not modelled: AMQP, TLS, quotas, scheduled and deferred messages, topics. Messages received come back as
``FakeReceivedMessage`` (the SDK's ``ServiceBusReceivedMessage`` needs an AMQP message to be built),
carrying the attributes the adapter reads under the SDK's names.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.exceptions import (
    MessageAlreadySettled,
    MessageLockLostError,
    MessagingEntityNotFoundError,
    OperationTimeoutError,
    ServiceBusError,
    SessionCannotBeLockedError,
    SessionLockLostError,
)

_POLL_S = 0.005  # how often a waiting accept or receive looks again


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass(eq=False)
class _Stored:
    seq: int
    message_id: str
    session_id: str | None
    body: bytes
    application_properties: dict[str, Any]
    correlation_id: str | None
    content_type: str | None
    subject: str | None
    enqueued_at: float
    delivery_count: int = 0
    holder: FakeReceiver | None = None
    lock_token: str | None = None
    locked_until: float = 0.0
    dead_letter_reason: str | None = None
    dead_letter_error_description: str | None = None


@dataclass(frozen=True)
class FakeReceivedMessage:
    """What a receive or peek returns: the ``ServiceBusReceivedMessage`` attributes the adapter uses."""

    message_id: str
    session_id: str | None
    body: bytes
    application_properties: dict[str, Any]
    correlation_id: str | None
    content_type: str | None
    subject: str | None
    sequence_number: int
    delivery_count: int
    enqueued_time_utc: datetime
    locked_until_utc: datetime | None
    lock_token: str | None
    dead_letter_reason: str | None
    dead_letter_error_description: str | None

    def __str__(self) -> str:
        return self.body.decode("utf-8")


@dataclass
class FakeQueueEntity:
    """One queue on the fake namespace, with the broker's settings for it."""

    name: str
    requires_session: bool = True
    lock_duration_s: float = 60.0
    max_delivery_count: int = 10
    duplicate_window_s: float = 600.0
    active: dict[int, _Stored] = field(default_factory=dict)
    dead: dict[int, _Stored] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)  # message id -> first sent (duplicate detection)
    session_locks: dict[str, tuple[FakeReceiver, float]] = field(default_factory=dict)  # -> holder, until
    states: dict[str, bytes] = field(default_factory=dict)
    seqs: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def expire_locks(self, now: float) -> None:
        """Run out the locks whose time is up, as the broker does in the background."""
        for sid, (holder, until) in list(self.session_locks.items()):
            if until <= now:
                del self.session_locks[sid]
                holder.lost = True
                self.unlock_held_by(holder)
        for stored in list(self.active.values()) + list(self.dead.values()):
            if stored.holder is not None and stored.holder.session_id is None and stored.locked_until <= now:
                self.unlock(stored)

    def unlock_held_by(self, holder: FakeReceiver) -> None:
        for stored in list(self.active.values()) + list(self.dead.values()):
            if stored.holder is holder:
                self.unlock(stored)

    def unlock(self, stored: _Stored) -> None:
        """A message given back (abandoned, or its lock gone): dead-lettered once out of deliveries."""
        stored.holder, stored.lock_token = None, None
        if stored.seq in self.active and stored.delivery_count >= self.max_delivery_count:
            del self.active[stored.seq]
            stored.dead_letter_reason = "MaxDeliveryCountExceeded"
            stored.dead_letter_error_description = (
                f"Message could not be consumed after {self.max_delivery_count} delivery attempts."
            )
            self.dead[stored.seq] = stored

    def free_session(self) -> str | None:
        locked = set(self.session_locks)
        heads = (s for s in self.active.values() if s.session_id is not None and s.session_id not in locked)
        oldest = min(heads, key=lambda s: s.seq, default=None)
        return None if oldest is None else oldest.session_id


class FakeNamespace:
    """The broker: its queues, shared by every client made on it (replicas on one namespace)."""

    def __init__(self) -> None:
        self.queues: dict[str, FakeQueueEntity] = {}

    def create_queue(self, name: str, **settings: Any) -> FakeQueueEntity:
        entity = FakeQueueEntity(name, **settings)
        self.queues[name] = entity
        return entity

    def queue(self, name: str) -> FakeQueueEntity:
        try:
            entity = self.queues[name]
        except KeyError:
            raise MessagingEntityNotFoundError(message=f"queue {name!r} not found") from None
        entity.expire_locks(time.monotonic())
        return entity


class FakeSender:
    def __init__(self, entity: FakeQueueEntity) -> None:
        self._entity = entity
        self._clock = time.time

    async def __aenter__(self) -> FakeSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        return None

    async def send_messages(self, message: ServiceBusMessage | Iterable[ServiceBusMessage], **_: Any) -> None:
        batch = [message] if isinstance(message, ServiceBusMessage) else list(message)
        entity = self._entity
        for msg in batch:  # checked first: a batch is accepted whole or not at all
            if entity.requires_session and not msg.session_id:
                raise ServiceBusError(message="the queue requires sessions: a message needs a session_id")
        now = time.monotonic()
        for msg in batch:
            message_id = msg.message_id or uuid.uuid4().hex
            first = entity.seen.get(message_id)
            if first is not None and now - first < entity.duplicate_window_s:
                continue  # duplicate detection: dropped, and the sender is not told
            entity.seen[message_id] = now
            body = b"".join(bytes(part) for part in msg.body) if not isinstance(msg.body, bytes) else msg.body
            seq = next(entity.seqs)
            entity.active[seq] = _Stored(
                seq,
                message_id,
                msg.session_id,
                body,
                {str(k): v for k, v in (msg.application_properties or {}).items()},
                msg.correlation_id,
                msg.content_type,
                msg.subject,
                self._clock(),
            )


class FakeSession:
    """``receiver.session``: the locked session's id, its lock and its state."""

    def __init__(self, receiver: FakeReceiver) -> None:
        self._receiver = receiver

    @property
    def session_id(self) -> str:
        assert self._receiver.session_id is not None
        return self._receiver.session_id

    @property
    def locked_until_utc(self) -> datetime:
        until = self._receiver.entity_lock()[1]
        return _utc(time.time() + (until - time.monotonic()))

    async def renew_lock(self, **_: Any) -> datetime:
        entity = self._receiver.entity_lock()[0]
        until = time.monotonic() + entity.lock_duration_s
        entity.session_locks[self.session_id] = (self._receiver, until)
        return self.locked_until_utc

    async def get_state(self, **_: Any) -> bytes:
        entity = self._receiver.entity_lock()[0]
        return entity.states.get(self.session_id, b"")

    async def set_state(self, state: str | bytes | bytearray | None, **_: Any) -> None:
        entity = self._receiver.entity_lock()[0]
        if state is None or len(state) == 0:
            entity.states.pop(self.session_id, None)
        else:
            entity.states[self.session_id] = state.encode() if isinstance(state, str) else bytes(state)


class FakeReceiver:
    """``ServiceBusReceiver`` in peek-lock mode, on the queue, one session of it, or its dead letters."""

    def __init__(
        self,
        namespace: FakeNamespace,
        queue_name: str,
        session_id: object,
        sub_queue: object,
        max_wait_time: float | None,
    ) -> None:
        self._namespace, self._queue_name = namespace, queue_name
        self._wanted = session_id
        self._dead = sub_queue in (ServiceBusSubQueue.DEAD_LETTER, "deadletter")
        self._max_wait = max_wait_time
        self.session_id: str | None = None
        self.lost = False
        self._open = False
        self._closed = False
        self._settled: set[str] = set()

    def _entity(self) -> FakeQueueEntity:
        return self._namespace.queue(self._queue_name)

    async def __aenter__(self) -> FakeReceiver:
        await self._ensure_open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _ensure_open(self) -> None:
        if self._closed:
            raise ValueError("the handler has already been shutdown")
        if self._open:
            return
        entity = self._entity()
        if self._dead:
            self._open = True
            return
        if self._wanted is None:
            if entity.requires_session:
                raise ServiceBusError(message="a sessionful queue needs a session receiver (session_id=…)")
            self._open = True
            return
        if self._wanted is NEXT_AVAILABLE_SESSION:
            deadline = time.monotonic() + (60.0 if self._max_wait is None else self._max_wait)
            while (sid := entity.free_session()) is None:
                if time.monotonic() >= deadline:
                    raise OperationTimeoutError(message="no session available within max_wait_time")
                await asyncio.sleep(_POLL_S)
                entity = self._entity()
        else:
            sid = str(self._wanted)
            if sid in entity.session_locks:
                raise SessionCannotBeLockedError(message=f"session {sid!r} is locked by another receiver")
        self.session_id = sid
        entity.session_locks[sid] = (self, time.monotonic() + entity.lock_duration_s)
        self._open = True

    def entity_lock(self) -> tuple[FakeQueueEntity, float]:
        """The queue and this receiver's session lock end; ``SessionLockLostError`` if it is gone."""
        entity = self._entity()
        held = entity.session_locks.get(self.session_id or "")
        if self.session_id is None or self.lost or held is None or held[0] is not self:
            raise SessionLockLostError(message="the session lock was lost")
        return entity, held[1]

    @property
    def session(self) -> FakeSession:
        if self.session_id is None:
            raise TypeError("session is only available to a session receiver")
        return FakeSession(self)

    def _box(self, entity: FakeQueueEntity) -> dict[int, _Stored]:
        return entity.dead if self._dead else entity.active

    def _mine(self, entity: FakeQueueEntity) -> list[_Stored]:
        return [
            s
            for s in sorted(self._box(entity).values(), key=lambda s: s.seq)
            if s.holder is None and (self._dead or s.session_id == self.session_id)
        ]

    async def receive_messages(
        self, max_message_count: int | None = 1, max_wait_time: float | None = None
    ) -> list[FakeReceivedMessage]:
        await self._ensure_open()
        wait = max_wait_time if max_wait_time is not None else self._max_wait
        deadline = time.monotonic() + (60.0 if wait is None else wait)
        while True:
            entity = self._entity()
            if self.session_id is not None:
                self.entity_lock()
            free = self._mine(entity)[: max(max_message_count or 1, 1)]
            if free or time.monotonic() >= deadline:
                break
            await asyncio.sleep(_POLL_S)
        now = time.monotonic()
        for stored in free:
            stored.delivery_count += 1
            stored.holder, stored.lock_token = self, uuid.uuid4().hex
            stored.locked_until = now + entity.lock_duration_s
        return [self._view(s, locked=True) for s in free]

    async def peek_messages(
        self, max_message_count: int = 1, *, sequence_number: int = 0, **_: Any
    ) -> list[FakeReceivedMessage]:
        await self._ensure_open()
        entity = self._entity()
        if self.session_id is not None:
            self.entity_lock()
        box = sorted(self._box(entity).values(), key=lambda s: s.seq)
        found = [
            s for s in box if s.seq >= sequence_number and (self._dead or s.session_id == self.session_id)
        ]
        return [self._view(s, locked=False) for s in found[:max_message_count]]

    def _view(self, s: _Stored, *, locked: bool) -> FakeReceivedMessage:
        until = _utc(time.time() + (s.locked_until - time.monotonic())) if locked else None
        return FakeReceivedMessage(
            s.message_id,
            s.session_id,
            s.body,
            dict(s.application_properties),
            s.correlation_id,
            s.content_type,
            s.subject,
            s.seq,
            s.delivery_count,
            _utc(s.enqueued_at),
            until,
            s.lock_token if locked else None,
            s.dead_letter_reason,
            s.dead_letter_error_description,
        )

    def _settle(self, message: FakeReceivedMessage) -> tuple[FakeQueueEntity, _Stored]:
        """The stored message this receiver holds the lock of; the SDK's error when it does not."""
        if self._closed:
            raise ValueError("the handler has already been shutdown")
        entity = self._entity()
        if self.session_id is not None:
            self.entity_lock()
        if message.lock_token in self._settled:
            raise MessageAlreadySettled(action="settle")
        stored = self._box(entity).get(message.sequence_number)
        if stored is None or stored.holder is not self or stored.lock_token != message.lock_token:
            if self.session_id is not None:
                raise SessionLockLostError(message="the message's session lock was lost")
            raise MessageLockLostError(message="the message lock was lost")
        self._settled.add(message.lock_token or "")
        return entity, stored

    async def complete_message(self, message: FakeReceivedMessage) -> None:
        entity, stored = self._settle(message)
        del self._box(entity)[stored.seq]

    async def abandon_message(self, message: FakeReceivedMessage) -> None:
        entity, stored = self._settle(message)
        entity.unlock(stored)

    async def dead_letter_message(
        self, message: FakeReceivedMessage, reason: str | None = None, error_description: str | None = None
    ) -> None:
        entity, stored = self._settle(message)
        if self._dead:
            raise ServiceBusError(message="a message of the dead-letter sub-queue cannot be dead-lettered")
        del entity.active[stored.seq]
        stored.holder, stored.lock_token = None, None
        stored.dead_letter_reason, stored.dead_letter_error_description = reason, error_description
        entity.dead[stored.seq] = stored

    async def renew_message_lock(self, message: FakeReceivedMessage, **_: Any) -> datetime:
        if self.session_id is not None:
            raise TypeError("renew the session lock (receiver.session.renew_lock()) in a session")
        entity, stored = self._settle(message)
        stored.locked_until = time.monotonic() + entity.lock_duration_s
        return _utc(time.time() + entity.lock_duration_s)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        entity = self._namespace.queues.get(self._queue_name)
        if entity is None:
            return
        held = entity.session_locks.get(self.session_id or "")
        if held is not None and held[0] is self:
            del entity.session_locks[self.session_id or ""]
        entity.unlock_held_by(self)  # what it received and did not settle goes back, counted


class FakeAdministrationClient:
    """``azure.servicebus.aio.management.ServiceBusAdministrationClient``: the queue's runtime figures."""

    def __init__(self, namespace: FakeNamespace) -> None:
        self._namespace = namespace

    async def get_queue_runtime_properties(self, queue_name: str, **_: Any) -> FakeQueueRuntimeProperties:
        entity = self._namespace.queue(queue_name)
        return FakeQueueRuntimeProperties(len(entity.active), len(entity.dead))

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class FakeQueueRuntimeProperties:
    active_message_count: int
    dead_letter_message_count: int


class FakeServiceBusClient:
    """``azure.servicebus.aio.ServiceBusClient`` on a ``FakeNamespace``."""

    def __init__(self, namespace: FakeNamespace) -> None:
        self.namespace = namespace

    async def __aenter__(self) -> FakeServiceBusClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        return None

    def get_queue_sender(self, queue_name: str, **_: Any) -> FakeSender:
        return FakeSender(self.namespace.queue(queue_name))

    def get_queue_receiver(
        self,
        queue_name: str,
        *,
        session_id: object = None,
        sub_queue: object = None,
        max_wait_time: float | None = None,
        **_: Any,
    ) -> FakeReceiver:
        self.namespace.queue(queue_name)
        return FakeReceiver(self.namespace, queue_name, session_id, sub_queue, max_wait_time)
