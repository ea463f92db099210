"""The map's "retrying" figures (``Metrics.retrying`` / ``settled``) that the card shows during an
outage: how many changes wait, the latest error, the soonest next attempt; ``last_error`` follows."""

from __future__ import annotations

from bridge.metrics import RETRY_GRACE_S, RETRYING, Metrics


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_retrying_counts_records_keeps_the_latest_error_and_the_soonest_attempt() -> None:
    clock = Clock()
    metrics = Metrics(clock=clock, maps=["warehouse"])
    assert metrics.snapshot("warehouse").retrying is None
    metrics.retrying("warehouse", "cds->scm", "k1", "scm 503: down", 10.0)
    clock.now += 1
    metrics.retrying("warehouse", "cds->scm", "k2", "scm: connection failed: refused", 2.0)
    clock.now += 1
    metrics.retrying("warehouse", "cds->scm", "k1", "scm 503: still down", 20.0)  # k1 again: one record
    r = metrics.snapshot("warehouse").retrying
    assert r is not None
    assert (r.count, r.error, r.at) == (2, "scm 503: still down", clock.now)
    assert r.next_attempt_at == clock.now - 1 + 2.0  # k2's, the soonest
    last = metrics.snapshot("warehouse").last_error
    assert last is not None and (last.kind, last.message) == (RETRYING, "scm 503: still down")


def test_settled_records_leave_and_overdue_ones_are_forgotten() -> None:
    clock = Clock()
    metrics = Metrics(clock=clock, maps=["warehouse"])
    metrics.retrying("warehouse", "cds->scm", "k1", "down", 1.0)
    metrics.retrying("warehouse", "cds->scm", "k2", "down", 1.0)
    metrics.settled("warehouse", "k1")
    r = metrics.snapshot("warehouse").retrying
    assert r is not None and r.count == 1
    metrics.settled("asset", "k2")  # another map's settle leaves this one alone
    assert metrics.snapshot("warehouse").retrying is not None
    clock.now += 1.0 + RETRY_GRACE_S + 1  # purged from the queue meanwhile: nobody settles it
    assert metrics.snapshot("warehouse").retrying is None
