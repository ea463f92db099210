"""Readiness details name what was probed and why it failed, in the failure's own words: a system's
answer, the network's error, or how long it stayed silent; never a bare ``TimeoutError: ``."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from bridge.core.deadline import current_deadline
from bridge.core.errors import RetryableError
from bridge.engine import control
from bridge.engine.control import EngineController, Probe, probe_failure


class Queue:
    async def depth(self, entity: str | None = None) -> int:
        return 0


class State:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    async def get_map_state(self, entity: str) -> object:
        if self.error is not None:
            raise self.error
        return None


class Engine:
    owner = "bridge-replica-1"
    stopping = False


def _controller(
    probes: dict[str, Probe], state: State | None = None, *, engine: Engine | None = None
) -> EngineController:
    return EngineController(
        engine=cast(Any, engine or Engine()),
        queue=cast(Any, Queue()),
        state=cast(Any, state or State()),
        probes=probes,
    )


def test_a_failure_is_told_with_its_target_and_its_own_text() -> None:
    target = "Dataverse at https://org.crm.dynamics.com/api/data/v9.2/"
    assert (
        probe_failure(target, RetryableError("cds 503: down for maintenance"), 5)
        == f"{target}: cds 503: down for maintenance"
    )
    assert probe_failure(target, TimeoutError(), 5) == f"{target}: no answer within 5s"
    assert probe_failure(target, ValueError(), 5) == f"{target}: ValueError()"
    assert probe_failure(target, OSError("disk full"), 5) == f"{target}: OSError: disk full"


async def test_a_silent_system_is_reported_by_name_and_the_probe_runs_within_a_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(control, "PROBE_S", 0.6)
    seen: list[float | None] = []

    async def silent() -> None:
        seen.append(current_deadline())
        await asyncio.sleep(60)

    async def fine() -> None:
        return None

    ready = await _controller(
        {
            "cds": Probe(silent, "Dataverse at https://cds.example/api/data/v9.2/"),
            "scm": Probe(fine, "Finance and Operations at https://scm.example/data/"),
            "tokens": Probe(fine, "the token authority https://login.example/t"),
        }
    ).readiness()
    assert (ready.queue, ready.cds, ready.scm, ready.tokens, ready.ready) == (True, False, True, True, False)
    assert ready.details == {"cds": "Dataverse at https://cds.example/api/data/v9.2/: no answer within 0.6s"}
    assert seen and seen[0] is not None  # the client's retries see a deadline, before the probe's own


async def _fine() -> None:
    return None


FINE = {name: Probe(_fine, name) for name in ("cds", "scm", "tokens")}


async def test_the_state_store_is_probed_and_names_the_replica() -> None:
    ready = await _controller(FINE).readiness()
    assert (ready.ready, ready.state, ready.replica, ready.stopping) == (
        True,
        True,
        "bridge-replica-1",
        False,
    )
    down = await _controller(FINE, state=State(OSError("connection refused"))).readiness()
    assert (down.ready, down.state) == (False, False)
    assert down.details == {"state": "the state store: OSError: connection refused"}


async def test_a_replica_shutting_down_is_not_ready_and_says_why() -> None:
    engine = Engine()
    engine.stopping = True
    ready = await _controller(FINE, engine=engine).readiness()
    assert (ready.ready, ready.stopping) == (False, True)
    assert ready.details == {"replica": "replica bridge-replica-1 is shutting down: its leases go back"}


async def test_a_state_store_that_does_not_answer_makes_the_replica_unready() -> None:
    async def fine() -> None:
        return None

    probes = {name: Probe(fine, name) for name in ("cds", "scm", "tokens")}
    down = OSError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")
    ready = await _controller(probes, State(down)).readiness()
    assert (ready.queue, ready.state, ready.ready) == (True, False, False)
    assert ready.details == {"state": f"the state store: OSError: {down}"}
    assert (await _controller(probes).readiness()).ready
