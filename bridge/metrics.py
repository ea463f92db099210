"""In-memory operational figures per map (entity) and direction, mirrored as OpenTelemetry instruments.

The writer reports outcomes (``received``, ``applied``, ``failed``, ``skipped``, ``ignored``); the
ops sampler reports queue figures (``sample_lag``, ``sample_depth``). The API reads ``snapshot`` and
``series``. Memory is bounded: fixed rings of time slots, a fixed-size window of recent latencies,
and caps on the number of distinct names kept.

Figures are process-local and start at zero on restart; durable history (failures, dead letters)
lives in the state store and the queue.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import CallbackOptions, Observation

from bridge import telemetry

CDS_TO_SCM = "cds->scm"
SCM_TO_CDS = "scm->cds"
DIRECTIONS: tuple[str, str] = (CDS_TO_SCM, SCM_TO_CDS)

SERIES_MINUTES = 60  # the dashboard chart: the last hour, one point per minute
LATENCY_WINDOW = 2048  # percentiles are over the most recent applied changes per direction
MAX_MAPS = 256  # distinct entities kept (maps are few; this guards against a caller bug)
MAX_IGNORED_NAMES = 100  # distinct unmapped entity names kept; the rest count as OTHER
OTHER = "(other)"
MAX_MESSAGE = 1000  # characters of an error message kept

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class _Ring:
    """Values per time slot over a fixed number of the most recent slots (sum or max per slot)."""

    def __init__(self, slots: int, width_s: float, *, combine: Callable[[float, float], float]) -> None:
        self._slots = slots
        self._width = width_s
        self._combine = combine
        self._stamp = [-1] * slots  # slot number held by each position, -1 = empty
        self._value = [0.0] * slots

    def _slot(self, t: float) -> int:
        return math.floor(t / self._width)

    def add(self, t: float, value: float) -> None:
        slot = self._slot(t)
        pos = slot % self._slots
        if self._stamp[pos] != slot:
            self._stamp[pos] = slot
            self._value[pos] = value
        else:
            self._value[pos] = self._combine(self._value[pos], value)

    def series(self, now: float) -> list[float | None]:
        """Oldest to newest, ending with the slot containing ``now``; None where nothing was added."""
        last = self._slot(now)
        out: list[float | None] = []
        for slot in range(last - self._slots + 1, last + 1):
            pos = slot % self._slots
            out.append(self._value[pos] if self._stamp[pos] == slot else None)
        return out

    def total(self, now: float) -> float:
        return sum(v for v in self.series(now) if v is not None)


def _add(a: float, b: float) -> float:
    return a + b


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True, slots=True)
class LastError:
    direction: str
    kind: str
    message: str
    at: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class RequestCounts:
    """What one system's HTTP client has sent since start: requests on the wire (retries
    included), the ``$batch`` requests among them, the writes those carried, and batches sent again
    one write at a time."""

    requests: int
    batches: int
    batched_writes: int
    batch_fallbacks: int


# The counters' names, for those who add them up across processes (the apply processes' pool).
REQUEST_COUNT_KEYS: tuple[str, ...] = tuple(f.name for f in fields(RequestCounts))


@dataclass(frozen=True, slots=True)
class DirectionFigures:
    direction: str
    received: int
    applied: int
    failed: int
    skipped: dict[str, int]
    applied_per_minute: float  # applied in the trailing 60 seconds
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None


@dataclass(frozen=True, slots=True)
class MapFigures:
    entity: str
    directions: dict[str, DirectionFigures]
    success: int  # applied, both directions
    failures: int  # failed, both directions
    last_error: LastError | None
    lag_s: float | None  # last sampled age of the oldest queued change
    depth: int | None  # last sampled queue depth
    retrying: Retrying | None = None  # changes waiting for their next attempt (None: none)


@dataclass(frozen=True, slots=True)
class MapSeries:
    entity: str
    applied: dict[str, list[int]]  # per direction, per minute
    failed: list[int]
    lag_s: list[float | None]  # max sampled lag per minute; None = not sampled


@dataclass
class _DirectionStats:
    received: int = 0
    applied: int = 0
    failed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    per_second: _Ring = field(default_factory=lambda: _Ring(60, 1.0, combine=_add))
    per_minute: _Ring = field(default_factory=lambda: _Ring(SERIES_MINUTES, 60.0, combine=_add))


@dataclass
class _MapStats:
    directions: dict[str, _DirectionStats] = field(
        default_factory=lambda: {d: _DirectionStats() for d in DIRECTIONS}
    )
    failed_per_minute: _Ring = field(default_factory=lambda: _Ring(SERIES_MINUTES, 60.0, combine=_add))
    lag_per_minute: _Ring = field(default_factory=lambda: _Ring(SERIES_MINUTES, 60.0, combine=max))
    last_error: LastError | None = None
    lag_s: float | None = None
    depth: int | None = None
    retrying: dict[str, _Retry] = field(default_factory=dict)  # record key -> its latest retry


class Metrics:
    """Per-map figures for the ops API, plus the matching OpenTelemetry instruments."""

    def __init__(
        self,
        *,
        meter: otel_metrics.Meter | None = None,
        clock: Callable[[], float] = time.time,
        maps: Iterable[str] = (),
    ) -> None:
        self._clock = clock
        self._maps: dict[str, _MapStats] = {}
        self._latency_export: dict[tuple[str, str], LatencyHistory] = {}  # (map, direction), issue 20
        self._ignored: Counter[str] = Counter()
        # OTel observable callbacks may run on the SDK's export thread.
        self._lock = threading.Lock()
        for name in maps:
            self._map(name)
        m = self._meter = meter or telemetry.meter()
        self._request_source: Callable[[], Mapping[str, RequestCounts]] | None = None
        self._received = m.create_counter(
            "dualwrite.changes.received", unit="{change}", description="Change notifications accepted"
        )
        self._applied = m.create_counter(
            "dualwrite.changes.applied", unit="{change}", description="Changes written to the other system"
        )
        self._failed = m.create_counter(
            "dualwrite.changes.failed", unit="{change}", description="Changes that could not be applied"
        )
        self._skipped = m.create_counter(
            "dualwrite.changes.skipped", unit="{change}", description="Echo, no-op, stale or duplicate"
        )
        self._ignored_counter = m.create_counter(
            "dualwrite.notifications.ignored", unit="{notification}", description="Unmapped entities"
        )
        self._latency = m.create_histogram(
            "dualwrite.change.latency",
            unit="s",
            description="Receipt to applied on the other system",
            explicit_bucket_boundaries_advisory=list(LATENCY_BUCKETS_S),
        )
        m.create_observable_gauge(
            "dualwrite.queue.depth",
            callbacks=[self._observe_depth],
            unit="{change}",
            description="Queued changes per map",
        )
        m.create_observable_gauge(
            "dualwrite.queue.lag",
            callbacks=[self._observe_lag],
            unit="s",
            description="Age of the oldest queued change per map",
        )

    def watch_requests(self, source: Callable[[], Mapping[str, RequestCounts]]) -> None:
        """Mirror the HTTP clients' counts (``source()``: system -> counts) as observable counters."""
        self._request_source = source
        for name, count, unit, description in (
            ("dualwrite.http.requests", "requests", "{request}", "Requests sent, retries included"),
            ("dualwrite.batch.requests", "batches", "{request}", "$batch requests among them"),
            ("dualwrite.batch.writes", "batched_writes", "{write}", "Writes carried in $batch requests"),
            ("dualwrite.batch.fallbacks", "batch_fallbacks", "{batch}", "Batches sent again one by one"),
        ):
            self._meter.create_observable_counter(
                name, callbacks=[self._observe_requests(count)], unit=unit, description=description
            )

    def request_counts(self) -> dict[str, RequestCounts]:
        source = self._request_source
        return {} if source is None else dict(source())

    def _observe_requests(self, count: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(getattr(counts, count), {"system": system})
                for system, counts in self.request_counts().items()
            ]

        return observe

    # ------------------------------------------------------------ writer-facing

    def received(self, entity: str, direction: str) -> None:
        with self._lock:
            self._dir(entity, direction).received += 1
        self._received.add(1, {"entity": entity, "direction": direction})

    def applied(self, entity: str, direction: str, latency_s: float) -> None:
        now = self._clock()
        latency_s = max(0.0, latency_s)
        with self._lock:
            stats = self._dir(entity, direction)
            stats.applied += 1
            stats.latencies.append(latency_s)
            stats.per_second.add(now, 1)
            stats.per_minute.add(now, 1)
            self._exported(entity, direction).record(now, latency_s)
        attrs = {"entity": entity, "direction": direction}
        self._applied.add(1, attrs)
        self._latency.record(latency_s, attrs)

    def failed(self, entity: str, direction: str, kind: str, message: str) -> None:
        now = self._clock()
        with self._lock:
            self._dir(entity, direction).failed += 1
            stats = self._map(entity)
            stats.failed_per_minute.add(now, 1)
            stats.last_error = LastError(direction, kind, message[:MAX_MESSAGE], now)
        self._failed.add(1, {"entity": entity, "direction": direction, "kind": kind})

    def skipped(self, entity: str, direction: str, reason: str) -> None:
        with self._lock:
            self._dir(entity, direction).skipped[reason] += 1
        self._skipped.add(1, {"entity": entity, "direction": direction, "reason": reason})

    def ignored(self, entity_name: str) -> None:
        with self._lock:
            name = entity_name if entity_name in self._ignored else self._cap_ignored(entity_name)
            self._ignored[name] += 1
        self._ignored_counter.add(1, {"entity": name})

    def retrying(self, entity: str, direction: str, record: str, message: str, delay_s: float) -> None:
        """A change of ``record`` failed retryably and waits ``delay_s`` for its next attempt: the
        map card's "retrying" state, and its ``last_error`` (so it never shows an older value)."""
        now = self._clock()
        with self._lock:
            stats = self._map(entity)
            if record in stats.retrying or len(stats.retrying) < MAX_RETRYING:
                stats.retrying[record] = _Retry(message[:MAX_MESSAGE], now, now + max(0.0, delay_s))
            stats.last_error = LastError(direction, RETRYING, message[:MAX_MESSAGE], now)

    def settled(self, entity: str, record: str) -> None:
        """The change of ``record`` left the retries (applied, refused, dead-lettered, dropped)."""
        with self._lock:
            stats = self._maps.get(entity)
            if stats is not None:
                stats.retrying.pop(record, None)

    # ------------------------------------------------------------ sampler-facing

    def sample_lag(self, entity: str, seconds: float | None) -> None:
        """Age of the oldest queued change of ``entity`` now (None or 0 = nothing queued)."""
        now = self._clock()
        with self._lock:
            stats = self._map(entity)
            stats.lag_s = max(0.0, seconds) if seconds is not None else None
            stats.lag_per_minute.add(now, stats.lag_s or 0.0)

    def sample_depth(self, entity: str, depth: int) -> None:
        with self._lock:
            self._map(entity).depth = max(0, depth)

    # ------------------------------------------------------------ API-facing

    def entities(self) -> list[str]:
        with self._lock:
            return sorted(self._maps)

    def ignored_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._ignored)

    def snapshot(self, entity: str) -> MapFigures:
        now = self._clock()
        with self._lock:
            stats = self._maps.get(entity) or _MapStats()
            directions = {d: self._figures(d, s, now) for d, s in stats.directions.items()}
            return MapFigures(
                entity=entity,
                directions=directions,
                success=sum(f.applied for f in directions.values()),
                failures=sum(f.failed for f in directions.values()),
                last_error=stats.last_error,
                lag_s=stats.lag_s,
                depth=stats.depth,
                retrying=_retrying_of(stats.retrying, now),
            )

    def series(self, entity: str) -> MapSeries:
        now = self._clock()
        with self._lock:
            stats = self._maps.get(entity) or _MapStats()
            return MapSeries(
                entity=entity,
                applied={d: _ints(s.per_minute.series(now)) for d, s in stats.directions.items()},
                failed=_ints(stats.failed_per_minute.series(now)),
                lag_s=stats.lag_per_minute.series(now),
            )

    def series_start(self) -> float:
        """Epoch seconds of the first minute in ``series`` (the minute 59 minutes before now)."""
        minute = math.floor(self._clock() / 60.0)
        return float((minute - SERIES_MINUTES + 1) * 60)

    # ------------------------------------------------------------ internals

    def _map(self, entity: str) -> _MapStats:
        stats = self._maps.get(entity)
        if stats is None:
            if len(self._maps) >= MAX_MAPS:
                entity = OTHER
                stats = self._maps.get(OTHER)
            if stats is None:
                stats = self._maps[entity] = _MapStats()
        return stats

    def _dir(self, entity: str, direction: str) -> _DirectionStats:
        directions = self._map(entity).directions
        stats = directions.get(direction)
        if stats is None:
            # Unknown direction names are kept (bounded: few callers), never silently merged.
            if len(directions) >= 8:
                raise ValueError(f"unknown direction {direction!r}; expected one of {DIRECTIONS}")
            stats = directions[direction] = _DirectionStats()
        return stats

    def _cap_ignored(self, name: str) -> str:
        return name if len(self._ignored) < MAX_IGNORED_NAMES else OTHER

    @staticmethod
    def _figures(direction: str, s: _DirectionStats, now: float) -> DirectionFigures:
        ordered = sorted(s.latencies)
        return DirectionFigures(
            direction=direction,
            received=s.received,
            applied=s.applied,
            failed=s.failed,
            skipped=dict(s.skipped),
            applied_per_minute=s.per_second.total(now),
            p50_s=percentile(ordered, 50),
            p95_s=percentile(ordered, 95),
            p99_s=percentile(ordered, 99),
        )

    def _observe_depth(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            pairs = [(e, s.depth) for e, s in self._maps.items() if s.depth is not None]
        return [Observation(d, {"entity": e}) for e, d in pairs]

    def _observe_lag(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            pairs = [(e, s.lag_s) for e, s in self._maps.items()]
        return [Observation(lag or 0.0, {"entity": e}) for e, lag in pairs if lag is not None]

    # ------------------------------------------------------------ /metrics and the charts (issue 20)

    def _exported(self, entity: str, direction: str) -> LatencyHistory:
        """The latency history of (entity, direction), made on first use (called under the lock)."""
        self._dir(entity, direction)  # the same caps as every other figure
        key = (entity if entity in self._maps else OTHER, direction)
        return self._latency_export.setdefault(key, LatencyHistory())

    def latency_histograms(self) -> dict[tuple[str, str], tuple[list[int], int, float]]:
        """(map, direction) -> cumulative counts per ``LATENCY_BUCKETS_S`` bound, count, sum (s)."""
        with self._lock:
            return {k: (list(h.buckets), h.count, h.total_s) for k, h in sorted(self._latency_export.items())}

    def latency_series(self, entity: str) -> dict[str, list[float | None]]:
        """Per direction, the mean latency (s) of each minute of ``series`` (None: nothing applied)."""
        now = self._clock()
        with self._lock:
            found = {d: self._latency_export.get((entity, d)) or LatencyHistory() for d in DIRECTIONS}
            return {d: h.mean_per_minute(now) for d, h in found.items()}


def _ints(values: list[float | None]) -> list[int]:
    return [int(v or 0) for v in values]


# ====================================================================== retries in progress
# (issue 20) What an outage looks like while it lasts: per map, the changes waiting for their next
# attempt. Fed by the engine's retry decisions (``bridge.engine.outcome``: ``Metrics.retrying`` and
# ``Metrics.settled``); read by ``GET /api/maps`` (``retrying``). Per system figures (answers,
# throttling, token) are ``bridge.systems.health``.

RETRYING = "retrying"  # LastError.kind while a change waits for its next attempt
MAX_RETRYING = 100_000  # records tracked per map (beyond: counted no more, still retried)
RETRY_GRACE_S = 300.0  # a retry whose attempt is this far overdue is forgotten (purged, or lost)


@dataclass(frozen=True, slots=True)
class _Retry:
    message: str
    at: float
    next_at: float


@dataclass(frozen=True, slots=True)
class Retrying:
    count: int  # changes of the map waiting for another attempt
    error: str  # the latest failed attempt's error (the other system's answer, or the network's)
    at: float  # epoch seconds of that attempt
    next_attempt_at: float  # epoch seconds of the soonest next attempt


def _retrying_of(retries: dict[str, _Retry], now: float) -> Retrying | None:
    for record in [r for r, v in retries.items() if v.next_at < now - RETRY_GRACE_S]:
        del retries[record]
    if not retries:
        return None
    latest = max(retries.values(), key=lambda r: r.at)
    soonest = min(r.next_at for r in retries.values())
    return Retrying(len(retries), latest.message, latest.at, soonest)


# ---------------------------------------------------------------- for /metrics and the charts (issue 20)


@dataclass
class LatencyHistory:
    """One map and direction: cumulative counts per ``LATENCY_BUCKETS_S`` bound (a Prometheus
    histogram, never reset while the process runs) and per minute of the last hour the sum and
    count of the latencies applied in it (the dashboard's latency chart)."""

    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS_S))
    count: int = 0
    total_s: float = 0.0
    minute_sum: _Ring = field(default_factory=lambda: _Ring(SERIES_MINUTES, 60.0, combine=_add))
    minute_count: _Ring = field(default_factory=lambda: _Ring(SERIES_MINUTES, 60.0, combine=_add))

    def record(self, now: float, latency_s: float) -> None:
        for i, bound in enumerate(LATENCY_BUCKETS_S):
            self.buckets[i] += latency_s <= bound
        self.count += 1
        self.total_s += latency_s
        self.minute_sum.add(now, latency_s)
        self.minute_count.add(now, 1)

    def mean_per_minute(self, now: float) -> list[float | None]:
        sums, counts = self.minute_sum.series(now), self.minute_count.series(now)
        return [t / n if t is not None and n else None for t, n in zip(sums, counts, strict=True)]
