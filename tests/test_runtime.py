"""The event loop of ``dualwrite serve``: uvloop by default, the standard loop on request or when
uvloop is missing (bridge.runtime)."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import pytest

from bridge.core.errors import ConfigError
from bridge.runtime import loop_factory, run
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
