"""The per-minute latency of the last hour (the dashboard's latency chart) and the cumulative latency
histogram (/metrics): what bridge.metrics keeps beside the throughput and lag rings."""

from __future__ import annotations

import pytest

from bridge.metrics import LATENCY_BUCKETS_S, SERIES_MINUTES, Metrics
from tests.ops.test_metrics import T0, Clock


def test_latency_mean_per_minute_over_the_last_hour() -> None:
    clock = Clock()
    metrics = Metrics(clock=clock)
    metrics.applied("warehouse", "cds->scm", 9.0)  # minute 0: will be older than an hour
    clock.now += 5 * 60
    metrics.applied("warehouse", "cds->scm", 1.0)  # minute 5: mean of 1 and 3
    metrics.applied("warehouse", "cds->scm", 3.0)
    clock.now += 60
    metrics.applied("warehouse", "scm->cds", 0.5)  # minute 6, the other way
    clock.now += 58 * 60  # minute 64: the hour shown is minutes 5..64

    series = metrics.latency_series("warehouse")

    there, back = series["cds->scm"], series["scm->cds"]
    assert len(there) == len(back) == SERIES_MINUTES == len(metrics.series("warehouse").failed)
    assert there[0] == pytest.approx(2.0) and there[1:] == [None] * 59
    assert back[1] == pytest.approx(0.5) and back[0] is None
    assert metrics.series_start() == T0 + 5 * 60
    clock.now += 2 * 60  # minutes 5 and 6 leave the hour
    assert metrics.latency_series("warehouse")["cds->scm"] == [None] * 60
    assert metrics.latency_series("no-such-map")["cds->scm"] == [None] * 60


def test_histogram_is_cumulative_and_never_rolls_off() -> None:
    clock = Clock()
    metrics = Metrics(clock=clock)
    for latency in (0.01, 0.3, 0.3, 400.0):
        metrics.applied("warehouse", "cds->scm", latency)
    clock.now += 2 * 3600  # long past the hour the charts show

    counts, count, total = metrics.latency_histograms()[("warehouse", "cds->scm")]

    by_bound = dict(zip(LATENCY_BUCKETS_S, counts, strict=True))
    assert by_bound[0.05] == 1 and by_bound[0.25] == 1 and by_bound[0.5] == 3 and by_bound[300.0] == 3
    assert count == 4 and total == pytest.approx(400.61)
