"""Each failed attempt of a change logs one line (map, record, attempt n of m, the other system's
text, what comes next), and the map's retrying figures follow the change until it settles."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.core.errors import RetryableError
from bridge.core.events import SyncMode, System
from bridge.engine.apply import Applied, Result
from bridge.engine.outcome import Answer, Outcomes
from bridge.engine.recovery import Recovery
from bridge.engine.sideports import Sides
from bridge.metrics import Metrics
from bridge.queue.sqlite import SqliteQueue
from bridge.settings import SyncSettings
from bridge.state.sqlite import SqliteState
from tests.engine.test_outcomes import MAPPINGS, MemoryDataverse, MemorySide, World, _event, _leased


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """test_outcomes' world: a real queue and state, both systems in memory, at most 3 attempts."""
    queue, state = SqliteQueue(tmp_path / "queue.db"), SqliteState(tmp_path / "state.db")
    await queue.open()
    await state.open()
    cds, scm = MemoryDataverse(System.CDS), MemorySide(System.SCM)
    metrics = Metrics(maps=MAPPINGS.maps)
    answers: list[tuple[str, Answer]] = []
    outcomes = Outcomes(
        queue=queue,
        state=state,
        recovery=Recovery(mappings=MAPPINGS, state=state, sides=Sides(cds=cds, scm=scm)),
        metrics=metrics,
        settings=SyncSettings(max_attempts=3),
        answer=lambda event, answer: answers.append((event.event_id, answer)),
    )
    yield World(outcomes, queue, state, cds, scm, metrics, answers)
    await queue.close()
    await state.close()


UNAVAILABLE = RetryableError("scm 503: The service is temporarily unavailable.", status=503)


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "bridge.engine.outcome"]


async def test_a_retried_attempt_logs_a_warning_and_shows_retrying(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    item = await _leased(world, _event(System.CDS, SyncMode.ASYNC))
    with caplog.at_level(logging.INFO):
        await world.outcomes.after_failure(item, UNAVAILABLE)
    [(level, line)] = _lines(caplog)
    assert level == logging.WARNING
    assert line.startswith(
        "map ship_via, record USMF/Rail (cds->scm): attempt 1 of 3 failed:"
        " scm 503: The service is temporarily unavailable.; next attempt in "
    )
    retrying = world.metrics.snapshot("ship_via").retrying
    assert retrying is not None and retrying.count == 1 and retrying.error == UNAVAILABLE.message

    await world.outcomes.after_write(item, Applied(Result.APPLIED, "created"), originator_gone=False)
    assert world.metrics.snapshot("ship_via").retrying is None  # applied: no longer retrying


async def test_the_last_attempt_logs_an_error_naming_the_dead_letter(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    item = dataclasses.replace(await _leased(world, _event(System.SCM, SyncMode.ASYNC)), attempts=2)
    world.metrics.retrying("ship_via", "scm->cds", item.event.record_key, "earlier", 1.0)
    with caplog.at_level(logging.INFO):
        await world.outcomes.after_failure(item, UNAVAILABLE)
    [(level, line)] = _lines(caplog)
    assert level == logging.ERROR
    assert "(scm->cds): attempt 3 of 3 failed: scm 503" in line and line.endswith(
        "no attempts left: dead-lettered (replay it from the dashboard once the cause is fixed)"
    )
    assert world.metrics.snapshot("ship_via").retrying is None


async def test_a_synchronous_attempt_names_its_budget(world: World, caplog: pytest.LogCaptureFixture) -> None:
    item = await _leased(world, _event(System.CDS, SyncMode.SYNC))
    with caplog.at_level(logging.INFO):
        await world.outcomes.after_failure(item, UNAVAILABLE)
    [(_, line)] = _lines(caplog)
    assert "(cds->scm): attempt 1 (synchronous: its 20s budget ends in " in line
    assert "next attempt in " in line
