"""Settings: a TOML file plus the environment; secrets from the environment only."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.core.errors import ConfigError
from bridge.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "deploy" / "dualwrite.example.toml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("DUALWRITE_"):
            monkeypatch.delenv(name)


def test_the_shipped_example_loads_and_secrets_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DUALWRITE_CLIENT_SECRET", "s3cret-value")
    settings = load_settings(EXAMPLE)
    assert settings.cds.url.endswith("/api/data/v9.2") and settings.scm.url.endswith("/data")
    assert settings.listen.port == 8080 and settings.sync.sync_budget_s == 20
    assert settings.client_secret.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(settings) and "s3cret-value" not in str(settings)  # never shown


def test_the_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUALWRITE_LISTEN__PORT", "9090")
    monkeypatch.setenv("DUALWRITE_SYNC__CONCURRENCY", "8")
    settings = load_settings(EXAMPLE)
    assert settings.listen.port == 9090 and settings.listen.host == "0.0.0.0"  # merged, not replaced
    assert settings.sync.concurrency == 8


@pytest.mark.parametrize(
    "secret", ["client_secret", "admin_token", "admin_password", "cds_webhook_key", "scm_webhook_key"]
)
def test_a_secret_in_the_file_is_refused(tmp_path: Path, secret: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(EXAMPLE.read_text().replace("mappings_dir", f'{secret} = "x"\nmappings_dir', 1))
    with pytest.raises(ConfigError, match=f"DUALWRITE_{secret.upper()}") as exc:
        load_settings(config)
    assert exc.value.file == str(config) and exc.value.field == secret


def test_errors_name_the_file_and_the_field(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[cds]\nurl = "https://x/api/data/v9.2"\n')
    with pytest.raises(ConfigError) as exc:
        load_settings(config)
    message = str(exc.value)
    assert str(config) in message and "cds.scope" in message and "scm" in message
    with pytest.raises(ConfigError, match="not valid TOML"):
        bad = tmp_path / "bad.toml"
        bad.write_text("[cds\n")
        load_settings(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml")


def test_an_unknown_key_in_a_section_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(EXAMPLE.read_text().replace("port = 8080", "prot = 8080"))
    with pytest.raises(ConfigError, match=r"listen\.prot"):
        load_settings(config)
