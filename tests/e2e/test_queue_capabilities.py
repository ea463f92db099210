"""The engine on a queue backend without an optional capability: it falls back, nothing is faked."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.queue.base import QueueCapability, QueuedEvent
from tests.e2e.harness import Harness


async def test_a_synchronous_save_on_a_queue_that_cannot_lease_as_it_enqueues_still_goes_through(
    env: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``enqueue_leased`` the change is queued, then leased by the worker or taken by the
    replica that holds the save's call (``claim``, where the backend declares it): the save still
    waits for the write on the other system and gets its answer."""
    queue = env.bridge.queue
    monkeypatch.setattr(queue, "capabilities", queue.capabilities - {QueueCapability.ENQUEUE_LEASED})
    leased_by_worker: list[str] = []
    lease = queue.lease

    async def spy_lease(*args: Any, **kwargs: Any) -> list[QueuedEvent]:
        items = await lease(*args, **kwargs)
        leased_by_worker.extend(i.event.event_id for i in items)
        return items

    async def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("enqueue_leased called on a queue that does not declare it")

    monkeypatch.setattr(queue, "lease", spy_lease)
    if QueueCapability.CLAIM in queue.capabilities:
        claim = queue.claim  # type: ignore[attr-defined]

        async def spy_claim(*args: Any, **kwargs: Any) -> QueuedEvent | None:
            item: QueuedEvent | None = await claim(*args, **kwargs)
            if item is not None:
                leased_by_worker.append(item.event.event_id)
            return item

        monkeypatch.setattr(queue, "claim", spy_claim)
    monkeypatch.setattr(queue, "enqueue_leased", refuse)
    created = await env.cds_create("msdyn_shipvias", {"msdyn_name": "Slow", "msdyn_description": "a"})
    assert created.status == 201
    record_id = created.body["msdyn_shipviaid"]
    assert (await env.cds_update("msdyn_shipvias", record_id, {"msdyn_description": "b"})).status == 204
    row = await env.scm_find("DeliveryModesV2", "ModeCode", "Slow")
    assert row is not None and row["ModeDescription"] == "b"  # applied before the save returned
    await env.settle()
    assert len([i for i in leased_by_worker if i.startswith("cds:")]) == 2  # leased, not enqueue_leased
    assert await queue.depth() == 0
