"""Alert rules: act on a map after N failures in M minutes (default: pause after 10 in 15).

Pure logic over plain values. A rule names a map (or "*" for every map) and an action: pause the
map, POST a message to a webhook (Teams / Slack), or log at ERROR level; a map may have several.
``bridge.ops.watcher`` counts failures in the state store and acts; ``bridge.ops.api_alerts`` keeps
the rules in the state store (seeded from the ``[[alerts]]`` settings) and changes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from pydantic import Field

from bridge.settings import AlertAction, AlertSettings
from bridge.state.base import StoredAlertRule

DEFAULT_FAILURES = 10
DEFAULT_MINUTES = 15
EVERY_MAP = "*"
AUTO_PAUSE_PREFIX = "Paused automatically"  # how an admin (and the API) tells a rule pause apart


class AlertRule(AlertSettings):
    """An ``[[alerts]]`` rule with its id in the state store (None before it is stored)."""

    id: int | None = Field(default=None, description="Assigned by the state store")

    def applies_to(self, entity: str) -> bool:
        return self.map in (entity, EVERY_MAP)

    def redacted(self) -> AlertRule:
        """This rule as the API shows it: the webhook URL without its secret path."""
        return self.model_copy(update={"url": redacted_url(self.url)})

    def stored(self) -> StoredAlertRule:
        return StoredAlertRule(
            entity=self.map,
            failures=self.failures,
            minutes=self.minutes,
            action=self.action.value,
            url=self.url,
            id=self.id,
        )

    @classmethod
    def of(cls, stored: StoredAlertRule) -> AlertRule:
        return cls(
            map=stored.entity,
            failures=stored.failures,
            minutes=stored.minutes,
            action=AlertAction(stored.action),
            url=stored.url,
            id=stored.id,
        )


@dataclass(frozen=True, slots=True)
class AlertDecision:
    entity: str
    failures: int  # counted in the window
    rule: AlertRule
    reason: str | None  # set when the rule fires

    @property
    def fire(self) -> bool:
        return self.reason is not None

    @property
    def pause(self) -> bool:
        return self.reason is not None and self.rule.action is AlertAction.PAUSE


class AlertRules:
    """The rules in force, in id order (from the state store at start, changed through the API)."""

    def __init__(self, rules: Sequence[AlertRule] | None = None) -> None:
        self._rules: list[AlertRule] = list(rules) if rules is not None else [AlertRule()]

    def replace(self, rules: Sequence[AlertRule]) -> None:
        self._rules = list(rules)

    def all(self) -> list[AlertRule]:
        return list(self._rules)

    def get(self, rule_id: int) -> AlertRule | None:
        return next((r for r in self._rules if r.id == rule_id), None)

    def rules_for(self, entity: str) -> list[AlertRule]:
        """The rules that apply to ``entity``: its own first, then those for every map."""
        own = [r for r in self._rules if r.map == entity]
        return own + [r for r in self._rules if r.map == EVERY_MAP]

    def rule_for(self, entity: str) -> AlertRule:
        """The rule shown on the map's card and whose window says "failing": its first pause rule,
        else its first rule, else the default (which is not in force)."""
        rules = self.rules_for(entity)
        pausing = [r for r in rules if r.action is AlertAction.PAUSE]
        return (pausing or rules or [AlertRule()])[0]

    def window_start(
        self,
        entity: str,
        now: datetime,
        resumed_at: datetime | None = None,
        rule: AlertRule | None = None,
    ) -> datetime:
        """Where counting starts: M minutes ago, but never before the map was last resumed, so the
        failures that caused a pause do not pause the map again the moment an admin resumes it."""
        start = now - timedelta(minutes=(rule or self.rule_for(entity)).minutes)
        return max(start, resumed_at) if resumed_at is not None else start

    def evaluate(
        self, entity: str, failures: int, last_error: str | None = None, rule: AlertRule | None = None
    ) -> AlertDecision:
        rule = rule or self.rule_for(entity)
        reason = reason_text(entity, failures, rule, last_error) if failures >= rule.failures else None
        return AlertDecision(entity=entity, failures=failures, rule=rule, reason=reason)


def reason_text(entity: str, failures: int, rule: AlertRule, last_error: str | None = None) -> str:
    """The pause reason shown on the dashboard and returned by the API, or the alert's message."""
    counted = f"{failures} failures in the last {rule.minutes} min"
    what = f"alert rule: {rule.failures} in {rule.minutes} min"
    if rule.action is AlertAction.PAUSE:
        text = f"{AUTO_PAUSE_PREFIX}: {counted} ({what}). Fix the cause, then resume."
    else:
        text = f"dualwrite alert on map {entity}: {counted} ({what})."
    if last_error:
        text += f" Last error: {last_error[:300]}"
    return text


def is_auto_pause(reason: str | None) -> bool:
    return bool(reason and reason.startswith(AUTO_PAUSE_PREFIX))


def redacted_url(url: str | None) -> str | None:
    """A webhook URL as logs and the API show it: scheme and host only (the path is the secret of a
    Teams or Slack incoming webhook)."""
    if url is None:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}/…"
