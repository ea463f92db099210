"""deploy/grafana/dualwrite.json, checked offline: valid JSON in Grafana's classic dashboard model,
the Prometheus data source templated, and every panel's PromQL naming only metrics /metrics exposes.

The model's fields and types are those of Grafana's "Dashboard JSON model" page (classic model:
grafana.com/docs/grafana/latest/visualizations/dashboards/build-dashboards/view-dashboard-json-model,
"JSON fields", "Panels", "gridPos", "templating"), written here as pydantic models.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ConfigDict, Field

from bridge.metrics import CDS_TO_SCM, Metrics, RequestCounts
from bridge.ops.metrics_http import BridgeCollector

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dualwrite.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class GridPos(Loose):
    x: int = Field(ge=0, le=23)
    y: int = Field(ge=0)
    w: int = Field(ge=1, le=24)
    h: int = Field(ge=1)


class Target(Loose):
    refId: str
    expr: str = Field(min_length=1)
    datasource: dict[str, str]


class Panel(Loose):
    id: int
    type: Literal["timeseries", "stat", "gauge", "table", "bargauge"]
    title: str = Field(min_length=1)
    gridPos: GridPos
    datasource: dict[str, str]
    targets: list[Target] = Field(min_length=1)


class Variable(Loose):
    name: str
    type: Literal["datasource", "query", "custom", "constant", "interval", "textbox"]


class Templating(Loose):
    list: list[Variable]


class TimeRange(Loose):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    from_: str = Field(alias="from")
    to: str


class Dashboard(Loose):
    uid: str = Field(min_length=1, max_length=40)
    title: str
    tags: list[str]
    timezone: str
    editable: bool
    graphTooltip: int = Field(ge=0, le=2)
    panels: list[Panel] = Field(min_length=1)
    time: TimeRange
    templating: Templating
    annotations: dict[str, Any]
    refresh: str
    schemaVersion: int = Field(ge=36)
    version: int


def _dashboard() -> Dashboard:
    return Dashboard.model_validate(json.loads(DASHBOARD.read_text(encoding="utf-8")))


# PromQL words that are not metric names: functions, aggregations and their modifiers.
PROMQL_WORDS = {
    "sum", "rate", "irate", "increase", "max", "min", "avg", "count", "histogram_quantile", "by",
    "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool",
    "topk", "bottomk", "clamp_min", "clamp_max", "delta", "deriv", "abs", "label_values",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: its identifiers outside quotes, label
    matchers, ranges and grouping lists, that are neither numbers nor PromQL's own words."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", text)
    names = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text))
    return {n for n in names if n not in PROMQL_WORDS}


def exposed_names() -> set[str]:
    """Every sample name /metrics writes, from the real collector over figures of every kind."""
    metrics = Metrics(maps=["warehouse"])
    metrics.watch_requests(lambda: {"cds": RequestCounts(1, 1, 1, 0)})
    metrics.applied("warehouse", CDS_TO_SCM, 0.3)
    metrics.failed("warehouse", CDS_TO_SCM, "rejected", "no")
    metrics.skipped("warehouse", CDS_TO_SCM, "echo")
    metrics.sample_depth("warehouse", 1)
    metrics.sample_lag("warehouse", 1.0)
    registry = CollectorRegistry(auto_describe=False)
    answers = {"cds": {"calls": 1, "throttled": 1, "errors": 1, "no_answer": 1}}
    registry.register(BridgeCollector(metrics, lambda: answers))
    text = generate_latest(registry).decode()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_dashboard_is_grafanas_classic_model() -> None:
    dash = _dashboard()
    ids = [p.id for p in dash.panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in dash.panels:
        assert panel.gridPos.x + panel.gridPos.w <= 24, panel.title  # Grafana's grid is 24 wide
        refs = [t.refId for t in panel.targets]
        assert len(refs) == len(set(refs)), panel.title


def test_the_datasource_is_templated() -> None:
    dash = _dashboard()
    variables = {v.name: v for v in dash.templating.list}
    assert variables["datasource"].type == "datasource"
    assert (
        variables["datasource"].model_extra and variables["datasource"].model_extra["query"] == "prometheus"
    )
    for panel in dash.panels:
        assert panel.datasource == DATASOURCE, panel.title
        for target in panel.targets:
            assert target.datasource == DATASOURCE, panel.title


def test_every_query_names_only_metrics_the_bridge_exposes() -> None:
    exposed = exposed_names()
    dash = _dashboard()
    used: set[str] = set()
    for panel in dash.panels:
        for target in panel.targets:
            names = metric_names(target.expr)
            assert names, f"{panel.title}: no metric in {target.expr}"
            assert names <= exposed, f"{panel.title}: {sorted(names - exposed)} not in /metrics"
            used |= names
    for variable in dash.templating.list:
        query = (variable.model_extra or {}).get("definition")
        if query:  # label_values(<metric>, <label>)
            found = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query)
            assert found and found.group(1) in exposed, query
    # The figures the dashboard shows, each on a panel.
    for name in (
        "dualwrite_changes_applied_total",
        "dualwrite_changes_failed_total",
        "dualwrite_queue_depth",
        "dualwrite_queue_lag_seconds",
        "dualwrite_change_latency_seconds_bucket",
        "dualwrite_system_calls_total",
        "dualwrite_system_throttled_total",
        "dualwrite_system_errors_total",
    ):
        assert name in used, name


def test_the_metric_name_parser() -> None:
    expr = 'histogram_quantile(0.95, sum by (le, map) (rate(dualwrite_x_bucket{map=~"$map"}[5m]))) * 60'
    assert metric_names(expr) == {"dualwrite_x_bucket"}
    assert metric_names("dualwrite_a / on (map) dualwrite_b") == {"dualwrite_a", "dualwrite_b"}
