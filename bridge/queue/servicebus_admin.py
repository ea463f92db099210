"""The administration half of the Service Bus queue (``QueueAdmin``): the queue's depth, and the
dead-letter sub-queue (list, replay, discard). ``ServiceBusQueue`` (bridge.queue.servicebus) is this
plus the work queue, on the same client and wake-up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue
from pydantic import ValidationError

from bridge.core.events import ChangeEvent
from bridge.queue.base import CapabilityMissing, DeadLetter, QueueCapability
from bridge.queue.servicebus_types import SbAdmin, SbClient, SbReceiver
from bridge.queue.servicebus_wire import body_of, message_of

log = logging.getLogger(__name__)

_PAGE = 100  # messages per peek or receive of the dead-letter sub-queue
_MAX_SWEEP = 10_000  # dead letters one replay or discard looks through


class ServiceBusAdmin:
    """``QueueAdmin`` on the queue's dead-letter sub-queue and runtime figures (set up by
    ``ServiceBusQueue``)."""

    _client: SbClient
    _admin: SbAdmin
    _queue: str
    _accept_wait: float
    _wake: asyncio.Event

    async def send(self, messages: Sequence[ServiceBusMessage]) -> None: ...

    def _dead_receiver(self) -> SbReceiver:
        receiver: SbReceiver = self._client.get_queue_receiver(
            self._queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER, max_wait_time=self._accept_wait
        )
        return receiver

    async def depth(self, entity: str | None = None) -> int:
        """The queue's active messages (queued and leased, not dead letters nor scheduled), from the
        broker's runtime figures (needs the Manage right); one map's alone it cannot count."""
        if entity is not None:
            raise CapabilityMissing(self, QueueCapability.MAP_FIGURES)
        figures = await self._admin.get_queue_runtime_properties(self._queue)
        return int(figures.active_message_count or 0)

    async def dead_letters(self, *, offset: int = 0, limit: int = 100) -> list[DeadLetter]:
        """Peeked (not locked) from the dead-letter sub-queue, lowest sequence number first."""
        offset, limit = max(offset, 0), max(limit, 0)
        found: list[Any] = []
        receiver = self._dead_receiver()
        try:
            await receiver.__aenter__()
            start = 1
            while len(found) < offset + limit:
                page = await receiver.peek_messages(
                    min(_PAGE, offset + limit - len(found)), sequence_number=start
                )
                if not page:
                    break
                found += page
                start = int(page[-1].sequence_number or 0) + 1
        finally:
            await receiver.close()
        out = [_dead_letter(m) for m in found[offset : offset + limit]]
        return [d for d in out if d is not None]

    async def replay(self, seqs: Collection[int] | None = None) -> int:
        """Each dead letter (None: all) sent again as a new message of its record (a new message id, so
        duplicate detection keeps it), then removed from the dead-letter sub-queue. It comes after
        the record's events queued meanwhile (no ``ORDERED_DEAD_LETTERS``)."""
        return await self._sweep(seqs, replay=True)

    async def discard(self, seqs: Collection[int] | None = None) -> int:
        return await self._sweep(seqs, replay=False)

    async def _sweep(self, seqs: Collection[int] | None, *, replay: bool) -> int:
        wanted = None if seqs is None else set(seqs)
        done = 0
        kept: list[Any] = []  # dead letters not wanted: held locked until the end, then given back
        receiver = self._dead_receiver()
        try:
            await receiver.__aenter__()
            while len(kept) + done < _MAX_SWEEP and (wanted is None or wanted):
                batch = await receiver.receive_messages(
                    max_message_count=_PAGE, max_wait_time=self._accept_wait
                )
                if not batch:
                    break
                for message in batch:
                    seq = int(message.sequence_number or 0)
                    if wanted is not None and seq not in wanted:
                        kept.append(message)
                        continue
                    if replay:
                        copy = _copy(message)
                        if copy is None:  # not a change event: nothing to replay, left for a person
                            kept.append(message)
                            continue
                        await self.send([copy])
                    await receiver.complete_message(message)
                    done += 1
                    if wanted is not None:
                        wanted.discard(seq)
            for message in kept:
                await receiver.abandon_message(message)
        finally:
            await receiver.close()
        if done and replay:
            self._wake.set()
        return done


def _event(message: Any) -> ChangeEvent | None:
    try:
        return ChangeEvent.model_validate_json(body_of(message))
    except ValidationError:
        log.warning("dead letter %s is not a change event: left alone", message.sequence_number)
        return None


def _dead_letter(message: Any) -> DeadLetter | None:
    """Service Bus keeps no dead-lettering time: ``dead_lettered_at`` is the message's enqueue time."""
    event = _event(message)
    if event is None:
        return None
    reason = message.dead_letter_error_description or message.dead_letter_reason or ""
    at = message.enqueued_time_utc or datetime.now(UTC)
    return DeadLetter(int(message.sequence_number or 0), event, int(message.delivery_count or 0), reason, at)


def _copy(message: Any) -> ServiceBusMessage | None:
    event = _event(message)
    if event is None:
        return None
    return message_of(event, message_id=f"replay:{message.sequence_number}:{message.message_id}")
