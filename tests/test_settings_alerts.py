"""``[[alerts]]`` in the settings: several tables, validated, the default when there are none, and the
environment form (``DUALWRITE_ALERTS`` as JSON, for webhook URLs that carry a secret)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridge.core.errors import ConfigError
from bridge.settings import AlertAction, AlertSettings, load_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "dualwrite.example.toml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DUALWRITE_"):
            monkeypatch.delenv(name)


def _with(tmp_path: Path, extra: str) -> Path:
    config = tmp_path / "c.toml"
    config.write_text(EXAMPLE.read_text(encoding="utf-8") + "\n" + extra, encoding="utf-8")
    return config


def test_without_alerts_the_default_rule_pauses_every_map() -> None:
    assert load_settings(EXAMPLE).alerts == [AlertSettings(map="*", failures=10, minutes=15)]


def test_several_alert_tables(tmp_path: Path) -> None:
    config = _with(
        tmp_path,
        """
[[alerts]]
map = "warehouse"
failures = 3
minutes = 5

[[alerts]]
map = "warehouse"
failures = 1
minutes = 60
action = "log"
""",
    )
    rules = load_settings(config).alerts
    assert [(r.map, r.failures, r.minutes, r.action) for r in rules] == [
        ("warehouse", 3, 5, AlertAction.PAUSE),
        ("warehouse", 1, 60, AlertAction.LOG),
    ]


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ('action = "webhook"', "url"),
        ('action = "email"', "action"),
        ("failures = 0", "failures"),
        ('colour = "red"', "colour"),
    ],
)
def test_bad_alert_tables_are_refused_naming_the_field(tmp_path: Path, table: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(_with(tmp_path, f"[[alerts]]\n{table}\n"))


def test_alerts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "DUALWRITE_ALERTS",
        '[{"map": "*", "failures": 2, "action": "webhook", "url": "https://hooks.example/T/B/x"}]',
    )
    [rule] = load_settings(EXAMPLE).alerts
    assert (rule.action, rule.url, rule.failures, rule.minutes) == (
        AlertAction.WEBHOOK,
        "https://hooks.example/T/B/x",
        2,
        15,
    )
