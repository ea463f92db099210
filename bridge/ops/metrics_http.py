"""``GET /metrics``: the dashboard's figures in Prometheus' text format, for the monitoring people
already run (docs/operations.md, "Prometheus and Grafana").

Rendered by the Prometheus client library (``prometheus_client``) from a custom collector that
reads ``bridge.metrics.Metrics`` at scrape time, so nothing is counted twice. Every name starts
with ``dualwrite_``. Access: ``Authorization: Bearer <admin token>`` or, when set, the metrics
token (``DUALWRITE_METRICS_TOKEN``): a scraper gets a credential that can read figures and nothing
else. The admin middleware leaves this path to this handler (``bridge.ops.auth.PUBLIC_PATHS``).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator, Mapping
from dataclasses import fields

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from bridge.metrics import LATENCY_BUCKETS_S, Metrics, RequestCounts
from bridge.ops.auth import AdminAuth, json_error

METRICS_PATH = "/metrics"
Answers = Callable[[], Mapping[str, Mapping[str, int]]]

# system answer counter -> (metric name without _total, help)
ANSWER_METRICS = {
    "calls": ("dualwrite_system_calls", "Calls sent to the system, retries included (this process)"),
    "throttled": ("dualwrite_system_throttled", "429 Too Many Requests answers"),
    "errors": ("dualwrite_system_errors", "Other 4xx and 5xx answers"),
    "no_answer": ("dualwrite_system_no_answer", "Calls that timed out or got no connection"),
}


class BridgeCollector(Collector):
    """The figures of ``Metrics`` (and the systems' answer counts) as Prometheus metric families."""

    def __init__(self, metrics: Metrics, answers: Answers | None = None) -> None:
        self.metrics = metrics
        self.answers = answers

    def collect(self) -> Iterator[Metric]:
        yield from self._changes()
        yield from self._latency()
        yield from self._systems()

    def _changes(self) -> Iterator[Metric]:
        by_dir, by_map = ["map", "direction"], ["map"]
        received = CounterMetricFamily(
            "dualwrite_changes_received", "Change notifications accepted", labels=by_dir
        )
        applied = CounterMetricFamily(
            "dualwrite_changes_applied", "Changes written to the other system", labels=by_dir
        )
        failed = CounterMetricFamily(
            "dualwrite_changes_failed", "Changes that could not be applied", labels=by_dir
        )
        skipped = CounterMetricFamily(
            "dualwrite_changes_skipped", "Echo, no-op, stale or duplicate", labels=[*by_dir, "reason"]
        )
        depth = GaugeMetricFamily("dualwrite_queue_depth", "Queued changes (last sample)", labels=by_map)
        lag = GaugeMetricFamily(
            "dualwrite_queue_lag_seconds", "Age of the oldest queued change", labels=by_map
        )
        for entity in self.metrics.entities():
            figures = self.metrics.snapshot(entity)
            for direction, d in figures.directions.items():
                received.add_metric([entity, direction], d.received)
                applied.add_metric([entity, direction], d.applied)
                failed.add_metric([entity, direction], d.failed)
                for reason, count in sorted(d.skipped.items()):
                    skipped.add_metric([entity, direction, reason], count)
            depth.add_metric([entity], figures.depth or 0)
            lag.add_metric([entity], figures.lag_s or 0.0)
        yield from (received, applied, failed, skipped, depth, lag)

    def _latency(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "dualwrite_change_latency_seconds",
            "Receipt to applied on the other system",
            labels=["map", "direction"],
        )
        for (entity, direction), (counts, count, total) in self.metrics.latency_histograms().items():
            buckets = [(_bound(b), float(c)) for b, c in zip(LATENCY_BUCKETS_S, counts, strict=True)]
            family.add_metric([entity, direction], [*buckets, ("+Inf", float(count))], sum_value=total)
        yield family

    def _systems(self) -> Iterator[Metric]:
        # The HTTP clients' own counts (apply processes included): one family per RequestCounts field.
        requests = self.metrics.request_counts()
        for f in fields(RequestCounts):
            family = CounterMetricFamily(
                f"dualwrite_http_{f.name}", f"HTTP client: {f.name}", labels=["system"]
            )
            for system, sent in sorted(requests.items()):
                family.add_metric([system], getattr(sent, f.name))
            yield family
        answers = self.answers() if self.answers else {}
        for key, (name, description) in ANSWER_METRICS.items():
            family = CounterMetricFamily(name, description, labels=["system"])
            for system, counts in sorted(answers.items()):
                family.add_metric([system], counts.get(key, 0))
            yield family


def _bound(seconds: float) -> str:
    return repr(float(seconds))


def metrics_routes(
    metrics: Metrics, auth: AdminAuth, *, token: str = "", answers: Answers | None = None
) -> list[web.RouteDef]:
    """``GET /metrics`` behind the admin token or ``token`` (the metrics token, when not empty)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BridgeCollector(metrics, answers))
    expected = token.encode()

    def allowed(header: str | None) -> bool:
        if token and header and header.startswith("Bearer "):
            sent = header[len("Bearer ") :].strip().encode("utf-8", "surrogatepass")
            if hmac.compare_digest(sent, expected):
                return True
        return auth.check_bearer(header)

    async def scrape(request: web.Request) -> web.Response:
        if not allowed(request.headers.get("Authorization")):
            return json_error(
                401,
                "unauthorized",
                "the admin token or the metrics token is required",
                **{"WWW-Authenticate": 'Bearer realm="dualwrite"'},
            )
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4}
        )

    return [web.get(METRICS_PATH, scrape)]
