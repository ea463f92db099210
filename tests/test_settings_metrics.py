"""``[metrics]``: /metrics on or off from the file; its token from the environment only."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.core.errors import ConfigError
from bridge.settings import load_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "dualwrite.example.toml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("DUALWRITE_"):
            monkeypatch.delenv(name)


def test_metrics_token_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(EXAMPLE).metrics.enabled is True
    monkeypatch.setenv("DUALWRITE_METRICS_TOKEN", "scrape-token-value-123")
    settings = load_settings(EXAMPLE)
    assert settings.metrics_token.get_secret_value() == "scrape-token-value-123"
    assert "scrape-token-value-123" not in repr(settings)


def test_a_metrics_token_in_the_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(EXAMPLE.read_text() + '\n[metrics]\nenabled = true\ntoken = "oops"\n')
    with pytest.raises(ConfigError, match="DUALWRITE_METRICS_TOKEN"):
        load_settings(config)


def test_metrics_can_be_turned_off_in_the_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(EXAMPLE.read_text() + "\n[metrics]\nenabled = false\n")
    assert load_settings(config).metrics.enabled is False
