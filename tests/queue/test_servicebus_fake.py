"""The Service Bus fake enforces the broker's rules (bridge/queue/servicebus_fake.py): one test per rule,
each against the SDK's own names and exceptions (azure.servicebus, azure.servicebus.exceptions)."""

from __future__ import annotations

import asyncio

import pytest
from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.exceptions import (
    MessageLockLostError,
    OperationTimeoutError,
    ServiceBusError,
    SessionCannotBeLockedError,
    SessionLockLostError,
)

from bridge.queue.servicebus_fake import FakeNamespace, FakeServiceBusClient


def _client(**settings: float) -> FakeServiceBusClient:
    namespace = FakeNamespace()
    namespace.create_queue("q", **settings)
    return FakeServiceBusClient(namespace)


async def _send(client: FakeServiceBusClient, session: str, message_id: str, body: str = "x") -> None:
    sender = client.get_queue_sender("q")
    await sender.send_messages(ServiceBusMessage(body, session_id=session, message_id=message_id))


async def test_a_locked_session_cannot_be_accepted_by_a_second_receiver() -> None:
    client = _client()
    await _send(client, "A", "m1")
    first = client.get_queue_receiver("q", session_id=NEXT_AVAILABLE_SESSION, max_wait_time=0.05)
    await first.__aenter__()
    assert first.session.session_id == "A"
    with pytest.raises(SessionCannotBeLockedError):
        await client.get_queue_receiver("q", session_id="A").__aenter__()
    with pytest.raises(OperationTimeoutError):  # the only session is taken: none is free
        await client.get_queue_receiver(
            "q", session_id=NEXT_AVAILABLE_SESSION, max_wait_time=0.05
        ).__aenter__()
    await first.close()
    again = client.get_queue_receiver("q", session_id="A")
    await again.__aenter__()  # free once the first receiver let go
    await again.close()


async def test_a_session_lock_runs_out_unless_renewed() -> None:
    client = _client(lock_duration_s=1.0)
    await _send(client, "A", "m1")
    receiver = client.get_queue_receiver("q", session_id="A", max_wait_time=0.05)
    [message] = await receiver.receive_messages(1, max_wait_time=0.05)
    assert message.delivery_count == 1
    await asyncio.sleep(0.6)
    await receiver.session.renew_lock()
    await asyncio.sleep(0.6)  # 1.2 s after the receive, 0.6 after the renewal: still held
    await receiver.session.get_state()
    await asyncio.sleep(1.1)
    with pytest.raises(SessionLockLostError):
        await receiver.complete_message(message)
    other = client.get_queue_receiver("q", session_id=NEXT_AVAILABLE_SESSION, max_wait_time=0.05)
    [again] = await other.receive_messages(1, max_wait_time=0.05)
    assert again.sequence_number == message.sequence_number and again.delivery_count == 2
    await other.complete_message(again)


async def test_a_dead_letters_message_lock_runs_out_too() -> None:
    client = _client(lock_duration_s=0.05)
    await _send(client, "A", "m1")
    receiver = client.get_queue_receiver("q", session_id="A", max_wait_time=0.05)
    [message] = await receiver.receive_messages(1, max_wait_time=0.05)
    await receiver.dead_letter_message(message, reason="bad", error_description="the whole story")
    dead = client.get_queue_receiver("q", sub_queue=ServiceBusSubQueue.DEAD_LETTER, max_wait_time=0.05)
    [parked] = await dead.receive_messages(10, max_wait_time=0.05)
    assert (parked.dead_letter_reason, parked.dead_letter_error_description) == ("bad", "the whole story")
    await asyncio.sleep(0.1)
    with pytest.raises(MessageLockLostError):
        await dead.complete_message(parked)


async def test_the_last_allowed_delivery_abandoned_goes_to_the_dead_letter_sub_queue() -> None:
    client = _client(max_delivery_count=2)
    await _send(client, "A", "m1")
    for count in (1, 2):
        receiver = client.get_queue_receiver("q", session_id="A", max_wait_time=0.05)
        [message] = await receiver.receive_messages(1, max_wait_time=0.05)
        assert message.delivery_count == count
        await receiver.abandon_message(message)
        await receiver.close()
    receiver = client.get_queue_receiver("q", session_id="A", max_wait_time=0.02)
    assert await receiver.receive_messages(1, max_wait_time=0.02) == []
    dead = client.get_queue_receiver("q", sub_queue=ServiceBusSubQueue.DEAD_LETTER)
    [parked] = await dead.peek_messages(10)
    assert parked.dead_letter_reason == "MaxDeliveryCountExceeded" and parked.delivery_count == 2


async def test_a_receiver_closed_with_a_message_unsettled_gives_it_back_counted() -> None:
    client = _client()
    await _send(client, "A", "m1")
    receiver = client.get_queue_receiver("q", session_id="A", max_wait_time=0.05)
    await receiver.receive_messages(1, max_wait_time=0.05)
    await receiver.close()
    again = client.get_queue_receiver("q", session_id="A", max_wait_time=0.05)
    [message] = await again.receive_messages(1, max_wait_time=0.05)
    assert message.delivery_count == 2


async def test_a_message_id_sent_again_within_the_window_is_dropped() -> None:
    client = _client(duplicate_window_s=0.5)
    await _send(client, "A", "m1", "first")
    await _send(client, "A", "m1", "again")  # within the window: dropped without a word
    await asyncio.sleep(0.6)
    await _send(client, "A", "m1", "later")  # the window has passed: a new message
    receiver = client.get_queue_receiver("q", session_id="A", max_wait_time=0.02)
    assert [str(m) for m in await receiver.receive_messages(10, max_wait_time=0.02)] == ["first", "later"]


async def test_a_session_queue_refuses_a_message_without_a_session_and_a_plain_receiver() -> None:
    client = _client()
    with pytest.raises(ServiceBusError, match="session"):
        await client.get_queue_sender("q").send_messages(ServiceBusMessage("x", message_id="m"))
    with pytest.raises(ServiceBusError, match="session"):
        await client.get_queue_receiver("q").receive_messages(1, max_wait_time=0.01)


async def test_a_sessions_messages_come_in_order_to_one_receiver() -> None:
    client = _client()
    for n in range(3):
        await _send(client, "A", f"m{n}", f"body {n}")
    receiver = client.get_queue_receiver("q", session_id="A", max_wait_time=0.02)
    assert [str(m) for m in await receiver.receive_messages(10, max_wait_time=0.02)] == [
        "body 0",
        "body 1",
        "body 2",
    ]
