"""Metrics figures from known inputs, bounded memory, and the OpenTelemetry mirror."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from bridge.metrics import (
    LATENCY_WINDOW,
    MAX_IGNORED_NAMES,
    MAX_MESSAGE,
    OTHER,
    Metrics,
    RequestCounts,
    percentile,
)

T0 = 1_800_000_000.0  # a whole minute (divisible by 60)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]

    assert [percentile(values, p) for p in (50, 95, 99, 100)] == [50.0, 95.0, 99.0, 100.0]
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0


def test_latency_percentiles_per_direction() -> None:
    metrics = Metrics()
    for ms in range(100, 0, -1):
        metrics.applied("warehouse", "cds->scm", ms / 1000)
    metrics.applied("warehouse", "scm->cds", 2.0)

    figures = metrics.snapshot("warehouse").directions

    cds = figures["cds->scm"]
    assert (cds.p50_s, cds.p95_s, cds.p99_s) == (0.05, 0.095, 0.099)
    assert (figures["scm->cds"].p50_s, figures["scm->cds"].p99_s) == (2.0, 2.0)


def test_latency_window_is_bounded_to_the_most_recent() -> None:
    metrics = Metrics()
    for _ in range(LATENCY_WINDOW):
        metrics.applied("asset", "cds->scm", 100.0)
    for _ in range(LATENCY_WINDOW):
        metrics.applied("asset", "cds->scm", 1.0)

    figures = metrics.snapshot("asset").directions["cds->scm"]

    assert figures.p99_s == 1.0 and figures.applied == 2 * LATENCY_WINDOW


def test_applied_per_minute_is_the_trailing_sixty_seconds() -> None:
    clock = Clock()
    metrics = Metrics(clock=clock)
    for _ in range(30):
        metrics.applied("warehouse", "cds->scm", 0.1)
    clock.now += 30
    for _ in range(10):
        metrics.applied("warehouse", "cds->scm", 0.1)

    clock.now += 15
    at_45 = metrics.snapshot("warehouse").directions["cds->scm"].applied_per_minute
    clock.now += 25
    at_70 = metrics.snapshot("warehouse").directions["cds->scm"].applied_per_minute
    clock.now += 60
    at_130 = metrics.snapshot("warehouse").directions["cds->scm"].applied_per_minute

    assert (at_45, at_70, at_130) == (40, 10, 0)
    assert metrics.snapshot("warehouse").directions["scm->cds"].applied_per_minute == 0


def test_series_buckets_per_minute_over_the_last_hour() -> None:
    clock = Clock()
    metrics = Metrics(clock=clock)
    metrics.applied("warehouse", "cds->scm", 0.1)  # minute 0: will be older than an hour
    clock.now += 5 * 60
    metrics.applied("warehouse", "cds->scm", 0.1)  # minute 5
    metrics.applied("warehouse", "scm->cds", 0.1)
    metrics.sample_lag("warehouse", 12.0)
    metrics.sample_lag("warehouse", 4.0)
    clock.now += 59 * 60  # minute 64: the hour shown is minutes 5..64, so minute 5 is its first point

    series = metrics.series("warehouse")

    assert len(series.failed) == 60 and len(series.applied["cds->scm"]) == 60
    assert series.applied["cds->scm"][0] == 1 and sum(series.applied["cds->scm"]) == 1
    assert series.applied["scm->cds"][0] == 1
    assert series.lag_s[0] == 12.0 and series.lag_s[1:] == [None] * 59
    assert metrics.series_start() == T0 + 5 * 60
    clock.now += 60  # one minute later minute 5 has left the hour
    assert sum(metrics.series("warehouse").applied["cds->scm"]) == 0


def test_failures_counts_and_last_error() -> None:
    clock = Clock()
    metrics = Metrics(clock=clock)
    metrics.failed("asset", "cds->scm", "rejected", "first")
    clock.now += 10
    metrics.failed("asset", "scm->cds", "retry-exhausted", "x" * 5000)
    metrics.applied("asset", "cds->scm", 0.2)

    snap = metrics.snapshot("asset")

    assert (snap.success, snap.failures) == (1, 2)
    assert snap.last_error is not None
    assert (snap.last_error.kind, snap.last_error.direction, snap.last_error.at) == (
        "retry-exhausted",
        "scm->cds",
        T0 + 10,
    )
    assert len(snap.last_error.message) == MAX_MESSAGE
    assert metrics.series("asset").failed[-1] == 2


def test_received_and_skipped_by_reason() -> None:
    metrics = Metrics()
    metrics.received("warehouse", "scm->cds")
    for reason in ("echo", "echo", "duplicate"):
        metrics.skipped("warehouse", "scm->cds", reason)

    figures = metrics.snapshot("warehouse").directions["scm->cds"]

    assert figures.received == 1 and figures.skipped == {"echo": 2, "duplicate": 1}


def test_ignored_names_are_counted_and_capped() -> None:
    metrics = Metrics()
    metrics.ignored("contact")
    metrics.ignored("contact")
    for i in range(MAX_IGNORED_NAMES + 5):
        metrics.ignored(f"table{i}")

    counts = metrics.ignored_counts()

    assert counts["contact"] == 2 and len(counts) == MAX_IGNORED_NAMES + 1 and counts[OTHER] == 6


def test_unknown_entity_has_empty_figures() -> None:
    snap = Metrics(maps=["warehouse"]).snapshot("nothing-yet")

    assert (snap.success, snap.failures, snap.last_error, snap.lag_s) == (0, 0, None, None)


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    out: dict[str, list[Any]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out[metric.name] = list(metric.data.data_points)
    return out


def test_figures_are_mirrored_as_opentelemetry_instruments() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics = Metrics(meter=provider.get_meter("dualwrite"))
    metrics.received("warehouse", "cds->scm")
    metrics.applied("warehouse", "cds->scm", 0.3)
    metrics.applied("warehouse", "cds->scm", 0.7)
    metrics.failed("warehouse", "scm->cds", "rejected", "no")
    metrics.skipped("warehouse", "scm->cds", "echo")
    metrics.ignored("contact")
    metrics.sample_depth("warehouse", 7)
    metrics.sample_lag("warehouse", 42.0)

    points = _points(reader)
    provider.shutdown()

    applied = points["dualwrite.changes.applied"][0]
    assert applied.value == 2 and dict(applied.attributes) == {"entity": "warehouse", "direction": "cds->scm"}
    latency = points["dualwrite.change.latency"][0]
    assert latency.count == 2 and abs(latency.sum - 1.0) < 1e-9
    assert dict(points["dualwrite.changes.failed"][0].attributes)["kind"] == "rejected"
    assert dict(points["dualwrite.changes.skipped"][0].attributes)["reason"] == "echo"
    assert points["dualwrite.changes.received"][0].value == 1
    assert dict(points["dualwrite.notifications.ignored"][0].attributes) == {"entity": "contact"}
    assert [(p.value, dict(p.attributes)) for p in points["dualwrite.queue.depth"]] == [
        (7, {"entity": "warehouse"})
    ]
    assert [p.value for p in points["dualwrite.queue.lag"]] == [42.0]


def test_request_counts_are_mirrored_per_system() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics = Metrics(meter=provider.get_meter("dualwrite"))
    assert metrics.request_counts() == {}  # nothing watched yet
    counts = {
        "cds": RequestCounts(requests=12, batches=2, batched_writes=40, batch_fallbacks=0),
        "scm": RequestCounts(requests=3, batches=0, batched_writes=0, batch_fallbacks=1),
    }
    metrics.watch_requests(lambda: counts)

    points = _points(reader)

    def by_system(name: str) -> dict[str, int]:
        return {p.attributes["system"]: p.value for p in points[name]}

    assert by_system("dualwrite.http.requests") == {"cds": 12, "scm": 3}
    assert by_system("dualwrite.batch.requests") == {"cds": 2, "scm": 0}
    assert by_system("dualwrite.batch.writes") == {"cds": 40, "scm": 0}
    assert by_system("dualwrite.batch.fallbacks") == {"cds": 0, "scm": 1}
