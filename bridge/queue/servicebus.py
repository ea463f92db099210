"""The work queue on Azure Service Bus: one session-enabled queue, a session per record.

Every event is one message: ``session_id`` = the record key (per-record order across replicas: the
broker hands a session to one receiver at a time, and a session's messages come in order),
``message_id`` = the event id (the broker's duplicate detection), the trace context in the application
properties. A lease is a session accepted (``NEXT_AVAILABLE_SESSION``) with its oldest message received
in peek-lock mode; the session lock is renewed while the lease lasts (long writes), and when the lease
runs out the message is abandoned and the session let go, as the SQLite queue hands an expired lease
out again. ``complete`` / ``release`` / ``dead_letter`` are complete / abandon (after the delay, holding
the session meanwhile) / dead-letter with reason and description. The client is injected: the factory
gives ``azure.servicebus.aio.ServiceBusClient``, the tests ``bridge.queue.servicebus_fake``.

What Service Bus cannot give is declared absent (``capabilities`` is empty) and raises
``CapabilityMissing``; docs/queue-and-state.md has the table of each port promise and what follows.
Dead letters and their replay are in bridge.queue.servicebus_admin.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusMessage
from azure.servicebus.exceptions import (
    MessageAlreadySettled,
    MessageLockLostError,
    OperationTimeoutError,
    SessionLockLostError,
)
from pydantic import ValidationError

from bridge.core.events import ChangeEvent
from bridge.queue.base import CapabilityMissing, QueueCapability, QueuedEvent
from bridge.queue.servicebus_admin import ServiceBusAdmin
from bridge.queue.servicebus_types import SbAdmin, SbClient, SbReceiver
from bridge.queue.servicebus_wire import body_of, entity_of, message_of, session_of

log = logging.getLogger(__name__)

# Settling a lease the broker no longer honours: the lease is lost, the port answers False.
LOCK_LOST = (SessionLockLostError, MessageLockLostError, MessageAlreadySettled)
_SEND_CHUNK = 100  # messages per send call (a batch must stay under the broker's size limit)


@dataclass(eq=False)
class _Hold:
    """A session this queue holds: a lease (``message`` received), a delayed release, or parked."""

    receiver: SbReceiver
    session_id: str
    message: Any | None
    seq: int
    until: float  # monotonic: the lease's or the delay's end (parked: never)
    renew_at: float
    has_state: bool = False


class ServiceBusQueue(ServiceBusAdmin):
    """``QueuePort`` on one session-enabled Service Bus queue, shared by every replica."""

    capabilities: frozenset[QueueCapability] = frozenset()

    def __init__(
        self,
        client: SbClient,
        queue_name: str,
        *,
        admin: SbAdmin,
        owner: str = "servicebus",
        accept_wait_s: float = 1.0,
        renew_every_s: float = 10.0,
        tick_s: float = 0.1,
        max_parked: int = 100,
    ) -> None:
        self._client, self._queue, self._admin = client, queue_name, admin
        self._owner = owner
        self._accept_wait = accept_wait_s  # how long one accept waits for a free session
        self._renew_every = renew_every_s  # must stay well under the queue's lock duration
        self._tick = tick_s
        self._max_parked = max_parked
        self._sender: Any | None = None
        self._leases: dict[str, _Hold] = {}  # lease token -> hold
        self._delayed: dict[str, _Hold] = {}  # session id -> released, abandoned when the delay ends
        self._parked: dict[str, _Hold] = {}  # session id -> a paused map's record, held unread
        self._tokens = itertools.count(1)
        self._wake = asyncio.Event()
        self._upkeep: asyncio.Task[None] | None = None

    @property
    def queue_name(self) -> str:
        return self._queue

    async def open(self) -> None:
        self._sender = self._client.get_queue_sender(self._queue)
        if self._upkeep is None:
            self._upkeep = asyncio.create_task(self._keep_up(), name="servicebus-locks")

    async def close(self) -> None:
        if self._upkeep is not None:
            self._upkeep.cancel()
            await asyncio.gather(self._upkeep, return_exceptions=True)
            self._upkeep = None
        holds = [*self._leases.values(), *self._delayed.values(), *self._parked.values()]
        for table in (self._leases, self._delayed, self._parked):
            table.clear()
        await asyncio.gather(*(self._give_back(h) for h in holds))
        if self._sender is not None:
            await self._sender.close()
            self._sender = None
        await self._admin.close()
        await self._client.close()

    # ---- enqueue -------------------------------------------------------------------------------

    async def enqueue(self, event: ChangeEvent) -> bool:
        return (await self.enqueue_many([event]))[0]

    async def enqueue_many(self, events: Sequence[ChangeEvent]) -> list[bool]:
        """Sent (durable on the broker) before return. Always True: Service Bus drops a repeated
        ``message_id`` within its duplicate-detection window without telling the sender, so a repeat
        is not queued twice but cannot be answered (no ``DEDUPE_ANSWER``)."""
        by_session: dict[str, list[ServiceBusMessage]] = {}
        for event in events:  # one send per record keeps its order (and suits partitioned queues)
            by_session.setdefault(session_of(event), []).append(message_of(event))
        await asyncio.gather(*(self.send(msgs) for msgs in by_session.values()))
        if events:
            self._wake.set()
        return [True] * len(events)

    async def send(self, messages: Sequence[ServiceBusMessage]) -> None:
        if self._sender is None:
            raise RuntimeError("the Service Bus queue is not open")
        for start in range(0, len(messages), _SEND_CHUNK):
            await self._sender.send_messages(list(messages[start : start + _SEND_CHUNK]))

    # ---- lease ---------------------------------------------------------------------------------

    async def lease(
        self, max_items: int, lease_seconds: float, *, exclude_entities: Collection[str] = ()
    ) -> list[QueuedEvent]:
        """Accept up to ``max_items`` free sessions and take the oldest message of each. A session of a
        paused map (``exclude_entities``) is parked: held unread (up to ``max_parked``), so the broker
        hands out other sessions, and leased from once its map runs again."""
        if max_items <= 0:
            return []
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        await self._settle_due()
        excluded = frozenset(exclude_entities)
        out: list[QueuedEvent] = []
        for sid in [s for s in self._parked if entity_of(s) not in excluded][:max_items]:
            item = await self._take(self._parked.pop(sid), lease_seconds)
            if item is not None:
                out.append(item)
        for _ in range(2 * max_items + 1):  # bounded: a poison message or an empty session costs a turn
            if len(out) >= max_items:
                break
            receiver: SbReceiver = self._client.get_queue_receiver(
                self._queue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=self._accept_wait
            )
            try:
                await receiver.__aenter__()
            except OperationTimeoutError:  # no free session within the wait
                await _close(receiver)
                break
            except BaseException:
                await _close(receiver)
                raise
            hold = _Hold(receiver, receiver.session.session_id, None, 0, float("inf"), self._renew_due_at())
            if entity_of(hold.session_id) in excluded:
                if len(self._parked) >= self._max_parked:
                    await _close(receiver)  # more paused records than it parks: try again next time
                    break
                self._parked[hold.session_id] = hold
                continue
            item = await self._take(hold, lease_seconds)
            if item is not None:
                out.append(item)
        return out

    async def _take(self, hold: _Hold, lease_seconds: float) -> QueuedEvent | None:
        """The session's oldest message as a lease; None (session let go) if it has none or a poison one."""
        receiver = hold.receiver
        try:
            messages = await receiver.receive_messages(max_message_count=1, max_wait_time=self._accept_wait)
        except LOCK_LOST:
            messages = []
        except BaseException:
            await _close(receiver)
            raise
        if not messages:
            await _close(receiver)
            return None
        message = messages[0]
        try:
            event = ChangeEvent.model_validate_json(body_of(message))
        except ValidationError as exc:
            log.error("Service Bus message %s is not a change event; dead-lettered", message.message_id)
            await receiver.dead_letter_message(
                message, reason="not a change event", error_description=str(exc)[:4000]
            )
            await _close(receiver)
            return None
        deliveries = message.delivery_count or 1
        last_error, has_state = None, False
        if deliveries > 1:  # released before: its error is in the session state
            state = _state(await receiver.session.get_state())
            has_state = bool(state)
            if state.get("seq") == message.sequence_number:
                last_error = state.get("error")
        token = f"{self._owner}-{id(self):x}-{next(self._tokens):x}"
        hold.message, hold.seq, hold.has_state = message, int(message.sequence_number or 0), has_state
        hold.until = time.monotonic() + lease_seconds
        self._leases[token] = hold
        enqueued = message.enqueued_time_utc or datetime.now(UTC)
        return QueuedEvent(hold.seq, event, deliveries - 1, token, enqueued, last_error)

    # ---- settle --------------------------------------------------------------------------------

    async def _claim(self, item: QueuedEvent) -> _Hold | None:
        """The lease's hold, taken out of the table; None if it was settled, lost or ran out."""
        hold = self._leases.pop(item.lease_token, None)
        if hold is not None and hold.until <= time.monotonic():
            await self._give_back(hold)
            return None
        return hold

    async def complete(self, item: QueuedEvent) -> bool:
        return (await self.complete_many([item]))[0]

    async def complete_many(self, items: Sequence[QueuedEvent]) -> list[bool]:
        return list(await asyncio.gather(*(self._complete(item) for item in items)))

    async def _complete(self, item: QueuedEvent) -> bool:
        hold = await self._claim(item)
        if hold is None:
            return False
        try:
            await hold.receiver.complete_message(hold.message)
            if hold.has_state:
                await hold.receiver.session.set_state(None)
            return True
        except LOCK_LOST:
            return False
        finally:
            await _close(hold.receiver)
            self._wake.set()  # the record's next event is free now

    async def release(self, item: QueuedEvent, *, delay: float = 0.0, error: str | None = None) -> bool:
        """Abandon the message (its delivery count goes up) at once, or after ``delay`` seconds while
        this queue keeps the session locked (so no replica takes the record meanwhile); ``error`` is
        kept in the session state for the next lease's ``last_error``."""
        hold = await self._claim(item)
        if hold is None:
            return False
        try:
            if error is not None or hold.has_state:
                state = json.dumps({"seq": hold.seq, "error": error})
                await hold.receiver.session.set_state(state)
                hold.has_state = True
            if delay > 0:
                hold.until = time.monotonic() + delay
                self._delayed[hold.session_id] = hold
                return True
            await hold.receiver.abandon_message(hold.message)
        except LOCK_LOST:
            await _close(hold.receiver)
            return False
        await _close(hold.receiver)
        self._wake.set()
        return True

    async def dead_letter(self, item: QueuedEvent, reason: str) -> bool:
        """To the dead-letter sub-queue: the reason's first line as ``DeadLetterReason``, all of it as
        ``DeadLetterErrorDescription``. The record's later events do not wait behind it (no
        ``ORDERED_DEAD_LETTERS``)."""
        hold = await self._claim(item)
        if hold is None:
            return False
        try:
            short = (reason.splitlines() or [""])[0][:200]
            await hold.receiver.dead_letter_message(
                hold.message, reason=short, error_description=reason[:4000]
            )
            if hold.has_state:
                await hold.receiver.session.set_state(None)
            return True
        except LOCK_LOST:
            return False
        finally:
            await _close(hold.receiver)
            self._wake.set()

    # ---- locks: renewal, expiry, delays ----------------------------------------------------------

    def _renew_due_at(self) -> float:
        return time.monotonic() + self._renew_every

    async def _give_back(self, hold: _Hold) -> None:
        """Let a session go; a message taken and not settled is abandoned (delivery count + 1)."""
        if hold.message is not None:
            try:
                await hold.receiver.abandon_message(hold.message)
            except Exception as exc:  # lost already: the broker gives it back itself
                log.debug("abandon on %s: %s", hold.session_id, exc)
        await _close(hold.receiver)
        self._wake.set()

    async def _settle_due(self) -> None:
        """Expired leases and ended delays: abandoned and let go, so any replica may take them."""
        now = time.monotonic()
        due: list[_Hold] = []
        for table in (self._leases, self._delayed):
            for key in [k for k, h in table.items() if h.until <= now]:
                due.append(table.pop(key))  # out of the table first: a settle racing it finds nothing
        await asyncio.gather(*(self._give_back(hold) for hold in due))

    async def _renew(self) -> None:
        """Renew every held session whose renewal is due, all at once (one round trip each)."""
        now = time.monotonic()
        due = [
            (table, key, hold)
            for table in (self._leases, self._delayed, self._parked)
            for key, hold in table.items()
            if hold.renew_at <= now
        ]
        await asyncio.gather(*(self._renew_one(table, key, hold) for table, key, hold in due))

    async def _renew_one(self, table: dict[str, _Hold], key: str, hold: _Hold) -> None:
        try:
            await hold.receiver.session.renew_lock()
            hold.renew_at = self._renew_due_at()
        except Exception as exc:  # the session is gone: its lease can settle nothing now
            if table.get(key) is not hold:
                return  # settled meanwhile: its receiver was closed on purpose
            log.warning("lost the Service Bus session %s: %s", hold.session_id, exc)
            del table[key]
            await _close(hold.receiver)

    async def _keep_up(self) -> None:
        while True:
            await asyncio.sleep(self._tick)
            try:
                await self._settle_due()
                await self._renew()
            except Exception:
                log.exception("Service Bus lock upkeep failed")

    async def wait(self, timeout: float) -> None:
        """Returns on an enqueue, settle or replay here, when a delay ends here, or after ``timeout``;
        other replicas' enqueues are found by the next lease (an accept waits for a free session)."""
        if not self._wake.is_set():
            if self._delayed:
                soonest = min(h.until for h in self._delayed.values()) - time.monotonic()
                timeout = min(timeout, soonest + 0.001)
            try:
                await asyncio.wait_for(self._wake.wait(), max(timeout, 0.0))
            except TimeoutError:
                return
        self._wake.clear()

    # ---- what Service Bus does not have ---------------------------------------------------------

    async def pending_of(self, record_key: str) -> list[ChangeEvent]:
        raise CapabilityMissing(self, QueueCapability.RECORD_VIEW)

    async def withdraw(self, event_id: str) -> bool:
        raise CapabilityMissing(self, QueueCapability.RECORD_VIEW)

    async def drain(self, entity: str, limit: int) -> list[QueuedEvent]:
        raise CapabilityMissing(self, QueueCapability.MAP_BACKLOG)

    async def purge(self, entity: str) -> int:
        raise CapabilityMissing(self, QueueCapability.MAP_BACKLOG)

    async def oldest_enqueued_at(self, entity: str | None = None) -> datetime | None:
        raise CapabilityMissing(self, QueueCapability.QUEUE_AGE)


def _state(raw: bytes | None) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def _close(receiver: SbReceiver) -> None:
    try:
        await receiver.close()
    except Exception as exc:  # closing a receiver whose link is gone
        log.debug("closing a Service Bus receiver: %s", exc)
