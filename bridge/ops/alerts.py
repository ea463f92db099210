"""Alert rules: pause a map after N failures in M minutes (default 10 in 15), configurable per map.

Pure logic over plain values. ``bridge.ops.watcher`` counts failures in the state store and pauses
through the Controller; this module decides whether to and says why, in words an admin reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_FAILURES = 10
DEFAULT_MINUTES = 15
AUTO_PAUSE_PREFIX = "Paused automatically"  # how an admin (and the API) tells a rule pause apart


class AlertRule(BaseModel):
    """Pause the map once ``failures`` failures happened within ``minutes`` minutes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    failures: int = Field(default=DEFAULT_FAILURES, ge=1, le=100_000, description="N failures ...")
    minutes: int = Field(default=DEFAULT_MINUTES, ge=1, le=10_080, description="... within M minutes")


@dataclass(frozen=True, slots=True)
class AlertDecision:
    entity: str
    failures: int  # counted in the window
    rule: AlertRule
    reason: str | None  # set when the map must be paused

    @property
    def pause(self) -> bool:
        return self.reason is not None


class AlertRules:
    """The default rule plus per-map overrides (from settings at start, changed through the API)."""

    def __init__(
        self, default: AlertRule | None = None, overrides: Mapping[str, AlertRule] | None = None
    ) -> None:
        self.default = default or AlertRule()
        self._overrides: dict[str, AlertRule] = dict(overrides or {})

    def rule_for(self, entity: str) -> AlertRule:
        return self._overrides.get(entity, self.default)

    def is_custom(self, entity: str) -> bool:
        return entity in self._overrides

    def set(self, entity: str, rule: AlertRule) -> None:
        self._overrides[entity] = rule

    def reset(self, entity: str) -> None:
        self._overrides.pop(entity, None)

    def window_start(self, entity: str, now: datetime, resumed_at: datetime | None = None) -> datetime:
        """Where counting starts: M minutes ago, but never before the map was last resumed, so the
        failures that caused a pause do not pause the map again the moment an admin resumes it."""
        start = now - timedelta(minutes=self.rule_for(entity).minutes)
        return max(start, resumed_at) if resumed_at is not None else start

    def evaluate(self, entity: str, failures: int, last_error: str | None = None) -> AlertDecision:
        rule = self.rule_for(entity)
        reason = reason_text(failures, rule, last_error) if failures >= rule.failures else None
        return AlertDecision(entity=entity, failures=failures, rule=rule, reason=reason)


def reason_text(failures: int, rule: AlertRule, last_error: str | None = None) -> str:
    """The pause reason shown on the dashboard and returned by the API."""
    text = (
        f"{AUTO_PAUSE_PREFIX}: {failures} failures in the last {rule.minutes} min "
        f"(alert rule: {rule.failures} in {rule.minutes} min). Fix the cause, then resume."
    )
    if last_error:
        text += f" Last error: {last_error[:300]}"
    return text


def is_auto_pause(reason: str | None) -> bool:
    return bool(reason and reason.startswith(AUTO_PAUSE_PREFIX))
