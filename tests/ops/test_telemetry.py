"""OpenTelemetry: one connected trace per change across the durable queue; trace ids in logs; export."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bridge import telemetry
from bridge.core.errors import ConfigError
from bridge.core.events import ChangeEvent
from bridge.queue.sqlite import SqliteQueue
from tests.ops.helpers import event


@pytest.fixture
def spans() -> Iterator[tuple[trace.Tracer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("test"), exporter
    provider.shutdown()


async def test_listener_and_writer_spans_form_one_trace_across_the_queue(
    spans: tuple[trace.Tracer, InMemorySpanExporter], tmp_path: Path
) -> None:
    tracer, exporter = spans
    queue = SqliteQueue(tmp_path / "q.db")
    await queue.open()
    try:
        # "In the listener": receipt span, context stored in the event, event made durable.
        with tracer.start_as_current_span(telemetry.SPAN_RECEIVE):
            queued = event().model_copy(update={"trace_context": telemetry.inject_context()})
            await queue.enqueue(queued)
        # "In the writer" (another task, later): the leased event's context parents the apply span.
        [item] = await queue.lease(1, 30.0)
        with (
            tracer.start_as_current_span(
                telemetry.SPAN_APPLY, context=telemetry.extract_context(item.event.trace_context)
            ),
            tracer.start_as_current_span(telemetry.SPAN_WRITE),
        ):
            pass
    finally:
        await queue.close()

    by_name = {s.name: s for s in exporter.get_finished_spans()}
    receive, apply, write = (
        by_name[n] for n in (telemetry.SPAN_RECEIVE, telemetry.SPAN_APPLY, telemetry.SPAN_WRITE)
    )
    assert receive.context is not None and apply.context is not None and write.context is not None
    assert len({receive.context.trace_id, apply.context.trace_id, write.context.trace_id}) == 1
    assert apply.parent is not None and apply.parent.span_id == receive.context.span_id
    assert write.parent is not None and write.parent.span_id == apply.context.span_id


def test_context_survives_a_json_round_trip(spans: tuple[trace.Tracer, InMemorySpanExporter]) -> None:
    tracer, exporter = spans
    with tracer.start_as_current_span("listener"):
        carrier = telemetry.inject_context()
    restored = ChangeEvent.model_validate_json(
        event().model_copy(update={"trace_context": carrier}).model_dump_json()
    )

    with tracer.start_as_current_span("writer", context=telemetry.extract_context(restored.trace_context)):
        pass

    listener, writer = exporter.get_finished_spans()
    assert set(carrier) >= {"traceparent"}
    assert listener.context is not None and writer.parent is not None
    assert (
        writer.parent.trace_id == listener.context.trace_id
        and writer.parent.span_id == listener.context.span_id
    )


@pytest.mark.parametrize("carrier", [{}, None, {"traceparent": "garbage"}])
def test_missing_or_bad_context_starts_a_new_trace(
    spans: tuple[trace.Tracer, InMemorySpanExporter], carrier: dict[str, str] | None
) -> None:
    tracer, exporter = spans

    with tracer.start_as_current_span("writer", context=telemetry.extract_context(carrier)):
        pass

    [span] = exporter.get_finished_spans()
    assert span.parent is None


def test_no_current_span_injects_nothing() -> None:
    assert telemetry.inject_context() == {}


def test_log_records_carry_trace_and_span_ids(
    spans: tuple[trace.Tracer, InMemorySpanExporter], caplog: pytest.LogCaptureFixture
) -> None:
    tracer, _ = spans
    caplog.handler.addFilter(telemetry.TraceContextFilter())
    log = logging.getLogger("dualwrite.test")
    with caplog.at_level(logging.INFO), tracer.start_as_current_span("apply") as span:
        log.info("inside")
    with caplog.at_level(logging.INFO):
        log.info("outside")

    inside, outside = caplog.records
    ctx = span.get_span_context()
    assert (inside.trace_id, inside.span_id) == (format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"))  # type: ignore[attr-defined]
    assert (outside.trace_id, outside.span_id) == ("-", "-")  # type: ignore[attr-defined]
    assert "[trace=" in logging.Formatter(telemetry.LOG_FORMAT).format(inside)


def test_export_is_off_without_an_endpoint() -> None:
    assert telemetry.configure_export(telemetry.TelemetrySettings()) is False


def test_export_without_the_otel_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def no_exporter(name: str, package: str | None = None) -> object:
        if name.startswith("opentelemetry.exporter"):
            raise ImportError(f"No module named {name!r}")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", no_exporter)
    settings = telemetry.TelemetrySettings(otlp_endpoint="http://127.0.0.1:4318")

    with pytest.raises(ConfigError, match=r"pip install 'dualwrite\[otel\]'"):
        telemetry.configure_export(settings)
