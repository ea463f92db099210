"""``[drift] check_every_minutes``: the bridge checks every map on its own, one check at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from bridge import drift as drift_module
from bridge.drift import DriftService
from bridge.state.driftport import DriftCheck


class _Checker:
    def __init__(self) -> None:
        self.calls: list[tuple[Sequence[str] | None, str | None]] = []
        self.release = asyncio.Event()
        self.release.set()

    async def check(self, maps: Sequence[str] | None, **kw: Any) -> list[DriftCheck]:
        self.calls.append((maps, kw.get("actor")))
        await self.release.wait()
        now = datetime.now(UTC)
        return [DriftCheck("ship_via", now, now, missing={"cds": 1, "scm": 0})]


async def test_checks_on_the_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    real_sleep = asyncio.sleep
    waits: list[float] = []

    async def quick(seconds: float) -> None:
        waits.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(drift_module.asyncio, "sleep", quick)
    checker = _Checker()
    service = DriftService(checker, every_minutes=5)  # type: ignore[arg-type]
    service.start()
    for _ in range(50):
        await real_sleep(0)
        if len(checker.calls) >= 2:
            break
    await service.stop()
    assert waits[0] == 300 and checker.calls[:2] == [(None, "drift schedule")] * 2


async def test_off_by_default_and_one_check_at_a_time() -> None:
    checker = _Checker()
    service = DriftService(checker, every_minutes=0)  # type: ignore[arg-type]
    service.start()
    await asyncio.sleep(0)
    assert checker.calls == []  # no schedule
    checker.release.clear()
    first = asyncio.create_task(service.check(["ship_via"]))
    await asyncio.sleep(0)
    assert service.checking
    with pytest.raises(RuntimeError, match="runs already"):
        await service.check(None)
    checker.release.set()
    assert (await first)[0].drifted == 1
    assert not service.checking
    await service.stop()
