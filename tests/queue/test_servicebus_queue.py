"""The Service Bus queue on the fake broker: what the contract suite does not show (lock renewal, two
replicas on one namespace, the message's ids and properties, dead-letter reason, parked paused maps),
and its construction from the settings (the real SDK client, the secret, the errors)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.aio import ServiceBusClient
from pydantic import SecretStr

from bridge.app import Bridge
from bridge.core.errors import ConfigError
from bridge.queue.base import CapabilityMissing, QueueCapability
from bridge.queue.factory import build_queue, create_queue
from bridge.queue.servicebus import ServiceBusQueue
from bridge.queue.servicebus_fake import FakeAdministrationClient, FakeNamespace, FakeServiceBusClient
from bridge.settings import QueueSettings, Settings, StorageSettings, load_settings
from tests.contract.queue_support import make_event, numbers
from tests.queue.test_factory import _settings

Make = Callable[..., Awaitable[ServiceBusQueue]]
Replicas = tuple[FakeNamespace, Make]


@pytest.fixture
async def replicas() -> AsyncIterator[tuple[FakeNamespace, Make]]:
    namespace = FakeNamespace()
    namespace.create_queue("q", lock_duration_s=0.4)
    opened: list[ServiceBusQueue] = []

    async def make(**options: float) -> ServiceBusQueue:
        # The broker's lock is short (0.4 s): a replica renews it often unless a test says otherwise.
        options = {"renew_every_s": 0.05, "tick_s": 0.01, **options}
        queue = ServiceBusQueue(
            FakeServiceBusClient(namespace), "q", admin=FakeAdministrationClient(namespace), **options
        )
        await queue.open()
        opened.append(queue)
        return queue

    yield namespace, make
    for queue in opened:
        await queue.close()


async def test_the_session_lock_is_renewed_while_the_lease_lasts(
    replicas: tuple[FakeNamespace, Make],
) -> None:
    _, make = replicas
    a = await make(accept_wait_s=0.01, renew_every_s=0.05, tick_s=0.01)
    b = await make(accept_wait_s=0.01)
    await a.enqueue(make_event(1))
    [item] = await a.lease(1, 30)
    await asyncio.sleep(1.0)  # more than twice the broker's lock duration: a long write
    assert await b.lease(10, 30) == []  # still A's
    assert await a.complete(item) is True


async def test_without_renewal_the_broker_takes_the_session_back(
    replicas: tuple[FakeNamespace, Make],
) -> None:
    _, make = replicas
    a = await make(accept_wait_s=0.01, renew_every_s=60)
    b = await make(accept_wait_s=0.01)
    await a.enqueue(make_event(1))
    [item] = await a.lease(1, 30)
    await asyncio.sleep(0.6)
    [again] = await b.lease(10, 30)
    assert again.seq == item.seq and again.attempts == 1
    assert await a.complete(item) is False


async def test_two_replicas_keep_one_records_order(replicas: Replicas) -> None:
    _, make = replicas
    a, b = await make(accept_wait_s=0.01), await make(accept_wait_s=0.01)
    await a.enqueue_many([make_event(1), make_event(2), make_event(3, key="W2")])
    held = await a.lease(1, 30)
    assert numbers(held) == [1]
    assert numbers(await b.lease(10, 30)) == [3]  # W1 is A's: its event 2 waits
    await a.complete(held[0])
    assert numbers(await b.lease(10, 30)) == [2]


async def test_the_message_carries_the_ids_and_the_trace(replicas: Replicas) -> None:
    namespace, make = replicas
    queue = await make()
    event = make_event(1)
    await queue.enqueue(event)
    [stored] = namespace.queues["q"].active.values()
    assert stored.session_id == event.record_key and stored.message_id == event.event_id
    assert stored.application_properties["traceparent"] == event.trace_context["traceparent"]
    assert stored.application_properties["Diagnostic-Id"] == event.trace_context["traceparent"]
    assert stored.correlation_id == event.correlation_id and stored.subject == "warehouse"


async def test_a_dead_letter_keeps_its_reason_and_description(replicas: Replicas) -> None:
    namespace, make = replicas
    queue = await make(accept_wait_s=0.01)
    await queue.enqueue(make_event(1))
    [item] = await queue.lease(1, 30)
    assert await queue.dead_letter(item, "rejected: no such site\nHTTP 400 from F&O") is True
    dead = FakeServiceBusClient(namespace).get_queue_receiver("q", sub_queue=ServiceBusSubQueue.DEAD_LETTER)
    [parked] = await dead.peek_messages(10)
    assert parked.dead_letter_reason == "rejected: no such site"
    assert parked.dead_letter_error_description == "rejected: no such site\nHTTP 400 from F&O"
    [listed] = await queue.dead_letters()
    assert listed.reason == "rejected: no such site\nHTTP 400 from F&O" and listed.event == item.event


async def test_a_paused_maps_records_are_parked_not_handed_out(replicas: Replicas) -> None:
    _, make = replicas
    a = await make(accept_wait_s=0.01, max_parked=1)
    await a.enqueue_many([make_event(1, key="P1"), make_event(2, key="P2", entity="ship_via")])
    assert [i.event.entity for i in await a.lease(10, 30, exclude_entities={"warehouse"})] == ["ship_via"]
    assert a.__dict__["_parked"].keys() == {"warehouse|USMF|P1"}
    assert numbers(await a.lease(10, 30)) == [1]  # its map runs again: the parked record is leased


async def test_what_it_lacks_it_refuses(replicas: Replicas) -> None:
    _, make = replicas
    queue = await make()
    assert queue.capabilities == frozenset()
    for call, capability in [
        (queue.depth("warehouse"), QueueCapability.MAP_FIGURES),
        (queue.oldest_enqueued_at(), QueueCapability.QUEUE_AGE),
        (queue.pending_of("warehouse|USMF|W1"), QueueCapability.RECORD_VIEW),
        (queue.withdraw("evt"), QueueCapability.RECORD_VIEW),
        (queue.drain("warehouse", 10), QueueCapability.MAP_BACKLOG),
        (queue.purge("warehouse"), QueueCapability.MAP_BACKLOG),
    ]:
        with pytest.raises(CapabilityMissing) as exc:
            await call
        assert exc.value.capability is capability


# ---- built from the settings -------------------------------------------------------------------

_CONN = "Endpoint=sb://example.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0"


def _sb_settings(tmp_path: Path, **queue: str) -> Settings:
    return _settings(tmp_path).model_copy(update={"queue": QueueSettings(backend="servicebus", **queue)})


async def test_the_connection_string_builds_the_sdks_client(tmp_path: Path) -> None:
    settings = _sb_settings(tmp_path, servicebus_queue="dw").model_copy(
        update={"servicebus_connection_string": SecretStr(_CONN)}
    )
    queue = create_queue(settings, owner="bridge-1")
    assert isinstance(queue, ServiceBusQueue) and queue.queue_name == "dw"
    assert isinstance(queue.__dict__["_client"], ServiceBusClient)
    assert "c2VjcmV0" not in repr(settings) and "c2VjcmV0" not in str(settings)
    await queue.close()


def test_without_a_connection_string_or_namespace_it_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DUALWRITE_SERVICEBUS_CONNECTION_STRING"):
        create_queue(_sb_settings(tmp_path), owner="x")
    with pytest.raises(ConfigError, match=r"queue\.servicebus_namespace.*credential"):
        create_queue(_sb_settings(tmp_path, servicebus_namespace="ns.servicebus.windows.net"), owner="x")
    with pytest.raises(ConfigError, match="settings"):
        build_queue("servicebus", StorageSettings(data_dir=tmp_path), owner="x")


def test_the_connection_string_is_refused_in_the_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'servicebus_connection_string = "{_CONN}"\n[cds]\nurl = "https://x/api/data/v9.2"\nscope = "s"\n'
        '[scm]\nurl = "https://x/data"\nscope = "s"\n[auth]\nauthority = "https://x/t"\nclient_id = "c"\n'
    )
    with pytest.raises(ConfigError, match="DUALWRITE_SERVICEBUS_CONNECTION_STRING"):
        load_settings(config)


def test_the_file_may_choose_servicebus(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[cds]\nurl = "https://x/api/data/v9.2"\nscope = "s"\n[scm]\nurl = "https://x/data"\nscope = "s"\n'
        '[auth]\nauthority = "https://x/t"\nclient_id = "c"\n'
        '[queue]\nbackend = "servicebus"\nservicebus_queue = "dw"\n'
    )
    settings = load_settings(config)
    assert (settings.queue.backend, settings.queue.servicebus_queue) == ("servicebus", "dw")


async def test_a_lease_that_runs_out_on_one_replica_goes_to_another(replicas: Replicas) -> None:
    _, make = replicas
    a = await make(accept_wait_s=0.01, tick_s=0.01, renew_every_s=0.05)
    b = await make(accept_wait_s=0.01)
    await a.enqueue(make_event(1))
    [item] = await a.lease(1, 0.1)  # A's worker never settles it, and A leases nothing more
    await asyncio.sleep(0.3)
    [again] = await b.lease(10, 30)  # A's upkeep abandoned it when the lease ran out
    assert again.seq == item.seq and again.attempts == 1
    assert await a.complete(item) is False and await b.complete(again) is True


async def test_a_delayed_release_keeps_the_record_from_every_replica(replicas: Replicas) -> None:
    _, make = replicas
    a = await make(accept_wait_s=0.01, tick_s=0.01, renew_every_s=0.05)
    b = await make(accept_wait_s=0.01)
    await a.enqueue(make_event(1))
    [item] = await a.lease(1, 30)
    assert await a.release(item, delay=0.3, error="HTTP 429") is True
    assert await b.lease(10, 30) == []  # A holds the session for the delay (its lock renewed)
    await asyncio.sleep(0.45)
    [again] = await b.lease(10, 30)
    assert (again.seq, again.attempts, again.last_error) == (item.seq, 1, "HTTP 429")


async def test_a_records_events_are_sent_in_order_in_chunks(replicas: Replicas) -> None:
    namespace, make = replicas
    queue = await make(accept_wait_s=0.01)
    assert await queue.enqueue_many([make_event(n) for n in range(250)]) == [True] * 250
    stored = sorted(namespace.queues["q"].active.values(), key=lambda s: s.seq)
    assert [s.message_id for s in stored] == [f"evt-warehouse-{n}" for n in range(250)]
    assert await queue.depth() == 250


async def test_a_message_that_is_not_a_change_event_is_dead_lettered(replicas: Replicas) -> None:
    namespace, make = replicas
    queue = await make(accept_wait_s=0.01)
    sender = FakeServiceBusClient(namespace).get_queue_sender("q")
    await sender.send_messages(
        ServiceBusMessage("{not json", session_id="warehouse|USMF|X", message_id="bad")
    )
    await queue.enqueue(make_event(1))
    assert numbers(await queue.lease(10, 30)) == [1]
    [dead] = namespace.queues["q"].dead.values()
    assert dead.message_id == "bad" and dead.dead_letter_reason == "not a change event"
    assert await queue.dead_letters() == []  # not an event: the listing leaves it to a person


async def test_the_bridge_builds_the_servicebus_queue_from_its_settings(tmp_path: Path) -> None:
    settings = _sb_settings(tmp_path).model_copy(update={"servicebus_connection_string": SecretStr(_CONN)})
    bridge = Bridge(settings)
    assert isinstance(bridge.queue, ServiceBusQueue) and bridge.queue.queue_name == "dualwrite"
    await bridge.queue.close()
