"""The activity log's writer: what changed on a map (written at once) and its applied changes
(gathered and written together, so an apply never waits for the log).

An applied change is noted synchronously into a buffer that is written within ``flush_after_s``
(one transaction for all of them, pruned to the last ``keep`` per map there); the engine's stop
writes what is left. A crash loses at most that half second of applied-change entries: the log is
for admins reading it, never for the sync itself. A failure to write it is logged, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from opentelemetry import trace

from bridge.core.events import ChangeEvent
from bridge.engine.apply import direction
from bridge.state.base import Activity, ActivityKind, StatePort

log = logging.getLogger(__name__)

DEFAULT_KEEP = 200  # per map and category; ``[state] activity_keep``
_TRACEPARENT = "traceparent"


def trace_id_of(event: ChangeEvent) -> str | None:
    """The W3C trace id (32 hex digits) of the apply: the current span's, else the one the change
    carried from its receipt; None when not traced."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        return format(context.trace_id, "032x")
    parent = (event.trace_context or {}).get(_TRACEPARENT, "")
    parts = parent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


class ActivityRecorder:
    def __init__(self, state: StatePort, *, keep: int = DEFAULT_KEEP, flush_after_s: float = 0.5) -> None:
        self.state = state
        self.keep = keep
        self.flush_after_s = flush_after_s
        self._buffer: list[Activity] = []
        self._flush_task: asyncio.Task[None] | None = None

    async def note(
        self, entity: str, kind: ActivityKind, message: str = "", *, actor: str | None = None
    ) -> None:
        """A change of the map (paused, started, ...), written now (after the buffered applies, so
        the log keeps the order things happened in)."""
        self._buffer.append(Activity(entity, kind, message, actor=actor, at=datetime.now(UTC)))
        await self.flush()

    def applied(self, event: ChangeEvent) -> None:
        """An applied change: its direction, latency (receipt to now) and trace id."""
        now = datetime.now(UTC)
        self._buffer.append(
            Activity(
                event.entity,
                ActivityKind.APPLIED,
                event.operation.value,
                at=now,
                direction=direction(event.source),
                key=f"{event.company}/{event.key}",
                latency_s=max((now - event.received_at).total_seconds(), 0.0),
                trace_id=trace_id_of(event),
            )
        )
        if self._flush_task is None:
            self._flush_task = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_after_s)
        self._flush_task = None
        await self.flush()

    async def flush(self) -> None:
        """Write what is gathered (one transaction)."""
        entries, self._buffer = self._buffer, []
        if not entries:
            return
        try:
            await self.state.add_activity(entries, keep=self.keep)
        except Exception:  # the activity log must never stop a sync or an admin action
            log.exception("activity log: %d entries not written", len(entries))

    async def close(self) -> None:
        if self._flush_task is not None:
            self._flush_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flush_task
            self._flush_task = None
        await self.flush()
