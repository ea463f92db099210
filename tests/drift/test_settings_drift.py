"""``[drift]``: the schedule off by default, the catch-up on; a typo or an out-of-range value refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.core.errors import ConfigError
from bridge.settings import load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "dualwrite.example.toml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("DUALWRITE_"):
            monkeypatch.delenv(name)


def test_the_defaults_and_the_example(tmp_path: Path) -> None:
    drift = load_settings(EXAMPLE).drift
    assert drift.check_every_minutes == 0 and drift.catch_up_on_start is True
    assert drift.catch_up_margin_s == 300


def test_the_file_and_the_environment_set_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text(EXAMPLE.read_text().replace("check_every_minutes = 0", "check_every_minutes = 60"))
    assert load_settings(config).drift.check_every_minutes == 60
    monkeypatch.setenv("DUALWRITE_DRIFT__CATCH_UP_ON_START", "false")
    assert load_settings(config).drift.catch_up_on_start is False


@pytest.mark.parametrize("line", ["check_every_minutes = -1", "catch_up_margin = 5"])
def test_bad_values_are_refused(tmp_path: Path, line: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(EXAMPLE.read_text().replace("check_every_minutes = 0", line))
    with pytest.raises(ConfigError, match="drift"):
        load_settings(config)
