"""OpenTelemetry seams: tracer and meter accessors, W3C context carriers, trace-aware logging.

Everything here uses ``opentelemetry-api`` only, which is a no-op until an SDK is installed and
configured. ``configure_export`` sets up OTLP export when the ``otel`` extra is installed
(``pip install 'dualwrite[otel]'``); it imports the SDK lazily and says clearly when it is missing.

One trace per change: the engine starts ``SPAN_RECEIVE`` when a listener hands it a notification
and stores ``inject_context()`` in ``ChangeEvent.trace_context``; the engine starts ``SPAN_APPLY`` with
``context=extract_context(event.trace_context)``, so the write on the other system, a compensation
(``SPAN_COMPENSATE``) and the outcome join the trace that began at webhook receipt, across the
durable queue and process restarts.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import BaseModel, ConfigDict, Field

from bridge.core.errors import ConfigError

INSTRUMENTATION_NAME = "dualwrite"

# Span names, one place so docs/operations.md and dashboards agree with the code.
SPAN_RECEIVE = "dualwrite.receive"  # Engine.submit: webhook receipt -> ChangeEvent durable in the queue
SPAN_APPLY = "dualwrite.apply"  # the engine: one queued event, lease -> outcome
SPAN_WRITE = "dualwrite.write"  # a Web API write (POST/PATCH/DELETE) on either system
SPAN_READ = "dualwrite.read"  # a Web API read on either system (lookups, conflict checks)
SPAN_COMPENSATE = "dualwrite.compensate"  # restoring the originator after a rejection

# Span attribute keys.
ATTR_ENTITY = "dualwrite.entity"
ATTR_COMPANY = "dualwrite.company"
ATTR_KEY = "dualwrite.key"
ATTR_DIRECTION = "dualwrite.direction"
ATTR_OPERATION = "dualwrite.operation"
ATTR_EVENT_ID = "dualwrite.event_id"
ATTR_OUTCOME = "dualwrite.outcome"
ATTR_SOURCE = "dualwrite.source"  # the system the change came from: "cds" or "scm"
ATTR_MODE = "dualwrite.mode"  # "sync" (a Dataverse synchronous step waits) or "async"

# W3C Trace Context only (traceparent/tracestate): what we persist must not depend on whatever
# global propagator a host application configured.
_PROPAGATOR = TraceContextTextMapPropagator()


def tracer() -> trace.Tracer:
    return trace.get_tracer(INSTRUMENTATION_NAME)


def tracing_enabled() -> bool:
    """An SDK tracer provider is installed. Without one every span is a no-op, and the hot path
    skips making them (a no-op span still costs context switching per change)."""
    return not isinstance(trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


class _NoSpan:
    """``with NO_SPAN as span``: what a no-op tracer gives, without its per-call cost."""

    def __enter__(self) -> trace.Span:
        return trace.INVALID_SPAN

    def __exit__(self, *exc: object) -> None:
        return None


NO_SPAN = _NoSpan()


def meter() -> metrics.Meter:
    return metrics.get_meter(INSTRUMENTATION_NAME)


def inject_context(context: Context | None = None) -> dict[str, str]:
    """The current span's W3C headers (``traceparent`` and maybe ``tracestate``); {} with no span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=context)
    return carrier


def extract_context(carrier: Mapping[str, str] | None) -> Context:
    """A context whose parent is the span described by ``carrier`` (empty/invalid -> a new root)."""
    return _PROPAGATOR.extract(dict(carrier or {}))


def event_attributes(
    *, entity: str, company: str, key: str, direction: str, operation: str, event_id: str
) -> dict[str, str]:
    """The span attributes every per-change span carries."""
    return {
        ATTR_ENTITY: entity,
        ATTR_COMPANY: company,
        ATTR_KEY: key,
        ATTR_DIRECTION: direction,
        ATTR_OPERATION: operation,
        ATTR_EVENT_ID: event_id,
    }


# ---------------------------------------------------------------- logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [trace=%(trace_id)s span=%(span_id)s] %(message)s"
_NO_TRACE = "-"


class TraceContextFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` (hex, or "-") to every record it sees.

    Attach it to handlers (not loggers) so records from every library logger get the fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            record.trace_id = format(ctx.trace_id, "032x")
            record.span_id = format(ctx.span_id, "016x")
        else:
            record.trace_id = _NO_TRACE
            record.span_id = _NO_TRACE
        return True


def trace_log_handler(handler: logging.Handler | None = None, *, fmt: str = LOG_FORMAT) -> logging.Handler:
    """A handler (stderr by default) that formats records with their trace and span ids."""
    handler = handler or logging.StreamHandler()
    handler.addFilter(TraceContextFilter())
    handler.setFormatter(logging.Formatter(fmt))
    return handler


def configure_logging(level: int | str = logging.INFO) -> logging.Handler:
    """Route the root logger through one trace-aware handler (idempotent)."""
    root = logging.getLogger()
    for existing in root.handlers:
        if any(isinstance(f, TraceContextFilter) for f in existing.filters):
            root.setLevel(level)
            return existing
    handler = trace_log_handler()
    root.addHandler(handler)
    root.setLevel(level)
    return handler


# ---------------------------------------------------------------- export


class TelemetrySettings(BaseModel):
    """How (and whether) to export traces and metrics over OTLP/HTTP."""

    model_config = ConfigDict(extra="forbid")

    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP base URL, e.g. http://127.0.0.1:4318; None = no export (API stays no-op)",
    )
    otlp_headers: dict[str, str] = Field(default_factory=dict, description="e.g. an API key header")
    service_name: str = "dualwrite"
    metric_interval_s: float = Field(default=30.0, gt=0)


MISSING_SDK_MESSAGE = (
    "OpenTelemetry export is configured (otlp_endpoint) but the SDK is not installed: "
    "pip install 'dualwrite[otel]' (opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http)"
)


def configure_export(settings: TelemetrySettings) -> bool:
    """Install SDK tracer and meter providers exporting over OTLP/HTTP; False when not configured.

    Raises ``ConfigError`` naming the missing extra when the SDK or exporter is not installed."""
    if not settings.otlp_endpoint:
        return False
    try:
        # The exporter is imported by name: it is optional and may have no stubs where mypy runs.
        span_exporter = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
        metric_exporter = importlib.import_module("opentelemetry.exporter.otlp.proto.http.metric_exporter")
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ConfigError(MISSING_SDK_MESSAGE, field="telemetry.otlp_endpoint") from exc

    base = settings.otlp_endpoint.rstrip("/")
    headers: dict[str, Any] = dict(settings.otlp_headers)
    resource = Resource.create({"service.name": settings.service_name})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(span_exporter.OTLPSpanExporter(endpoint=f"{base}/v1/traces", headers=headers))
    )
    reader = PeriodicExportingMetricReader(
        metric_exporter.OTLPMetricExporter(endpoint=f"{base}/v1/metrics", headers=headers),
        export_interval_millis=settings.metric_interval_s * 1000,
    )
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    return True
