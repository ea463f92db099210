"""How ``dualwrite serve`` runs (bridge.runtime): uvloop by default, the standard loop on request or
when uvloop is missing; startup's heap frozen and young collections rarer once it has started."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge import app
from bridge.core.errors import ConfigError
from bridge.runtime import loop_factory, run, settle_heap
from bridge.settings import load_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "dualwrite.example.toml"


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_is_the_default_and_runs_the_coroutine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUALWRITE_EVENT_LOOP", raising=False)
    settings = load_settings(EXAMPLE)
    assert settings.event_loop == "uvloop"
    assert run(_loop_module(), settings.event_loop).startswith("uvloop")


def test_asyncio_chooses_the_standard_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUALWRITE_EVENT_LOOP", "asyncio")
    settings = load_settings(EXAMPLE)
    assert settings.event_loop == "asyncio" and loop_factory("asyncio") is None
    assert run(_loop_module(), settings.event_loop).startswith("asyncio")


def test_a_missing_uvloop_falls_back_to_the_standard_loop_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    with caplog.at_level(logging.WARNING, logger="bridge.runtime"):
        assert run(_loop_module(), "uvloop").startswith("asyncio")
    assert "uvloop is not installed" in caplog.text


def test_an_unknown_loop_name_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('event_loop = "trio"\n' + EXAMPLE.read_text())
    with pytest.raises(ConfigError, match="event_loop"):
        load_settings(config)


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_settle_heap_freezes_startup_objects_and_sets_the_young_threshold(restore_gc: None) -> None:
    _, gen1, gen2 = gc.get_threshold()
    settle_heap(12_345)
    assert gc.get_threshold() == (12_345, gen1, gen2)
    assert gc.get_freeze_count() > 1000  # the modules and objects this process built so far


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_cycles_made_after_settle_heap_are_still_collected_on_their_own(restore_gc: None) -> None:
    settle_heap(200)
    a, b = _Node(), _Node()
    a.other, b.other = b, a  # a cycle: reference counting alone never frees it
    collected = weakref.ref(a)
    del a, b
    garbage = [[] for _ in range(5_000)]  # allocations enough for several young collections
    del garbage
    assert collected() is None


def test_gc_threshold_below_100_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("gc_gen0_threshold = 10\n" + EXAMPLE.read_text())
    with pytest.raises(ConfigError, match="gc_gen0_threshold"):
        load_settings(config)


async def test_serve_settles_the_heap_once_the_bridge_has_started(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[object] = []

    class _StartedBridge:
        url = "http://127.0.0.1:1"

        def __init__(self, settings: object) -> None:
            pass

        async def __aenter__(self) -> _StartedBridge:
            events.append("started")
            return self

        async def __aexit__(self, *exc: object) -> None:
            events.append("stopped")

    async def _stop_at_once() -> None:
        events.append("serving")

    monkeypatch.setenv("DUALWRITE_GC_GEN0_THRESHOLD", "4321")
    monkeypatch.setattr(app, "Bridge", _StartedBridge)
    monkeypatch.setattr(app, "run_until_stopped", _stop_at_once)
    monkeypatch.setattr(app, "settle_heap", events.append)
    assert await app.serve(load_settings(EXAMPLE)) == 0
    assert events == ["started", 4321, "serving", "stopped"]
