"""Dataverse webhooks: the ``WriteHooks`` the Dataverse engine calls for every notifying write.

Synchronous steps (mode 0) are called in ``before_commit``, inside the transaction: a non-2xx
answer or a timeout raises ``HookFailed`` and the engine rolls back. Asynchronous steps run after
commit as background jobs. Either way: the RemoteExecutionContext body, the documented headers,
auth types 4/5/6, the 256 KB rule, a timeout (60 s) and exactly one retry after 502/503/504. The
receiver's answer body is never looked at, only its status.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

from bridge.sandbox.contracts import HookFailed, RecordChange
from bridge.sandbox.faults import Faults
from bridge.sandbox.notify.common import (
    Background,
    DeliveryGate,
    DeliveryJob,
    HttpPoster,
    JobLog,
    PostResult,
    attempt_of,
    strip_query,
)
from bridge.sandbox.notify.context import fit_size, remote_execution_context
from bridge.sandbox.notify.registrations import RowSource, Step, load_steps, matching_steps

RETRIED_STATUSES = frozenset({502, 503, 504})
REGISTRATION_SETS = frozenset(
    {
        "serviceendpoints",
        "sdkmessageprocessingsteps",
        "sdkmessageprocessingstepimages",
        "sdkmessages",
        "sdkmessagefilters",
    }
)


def _encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class DataverseNotifier:
    def __init__(
        self,
        source: RowSource,
        *,
        faults: Faults,
        organization_id: str,
        organization_name: str,
        organization_host: str,
        business_unit_id: str | None = None,
        poster: HttpPoster | None = None,
        jobs: JobLog | None = None,
        timeout: float = 60.0,
        retry_delay: float = 0.0,
        authvalue_of: Callable[[str], str | None] | None = None,
    ) -> None:
        self.source = source
        self.faults = faults
        self.organization_id = organization_id
        self.organization_name = organization_name
        self.organization_host = organization_host
        self.business_unit_id = business_unit_id or str(uuid.uuid5(uuid.UUID(organization_id), "root-bu"))
        self.poster = poster or HttpPoster()
        self.jobs = jobs if jobs is not None else JobLog()
        self.timeout = timeout
        self.retry_delay = retry_delay
        self.authvalue_of = authvalue_of
        self.background = Background()
        self.gate = DeliveryGate(faults, self.background)
        self._steps_cache: list[Step] | None = None
        self._log_seen = 0

    # ------------------------------------------------------------------ WriteHooks
    async def before_commit(self, change: RecordChange) -> None:
        for step in self._steps(change):
            if step.synchronous:
                await self._call_sync(step, change)

    async def after_commit(self, change: RecordChange) -> None:
        for step in self._steps(change):
            if not step.synchronous:
                self._queue_async(step, change)

    def _steps(self, change: RecordChange) -> list[Step]:
        if change.system != "dataverse":
            return []
        return matching_steps(self.registered_steps(), change)

    def registered_steps(self) -> list[Step]:
        """The webhook steps, re-read only when a registration table was written since last time
        (found by scanning the new entries of the engine's write log), so each write stays cheap."""
        log = getattr(self.source, "write_log", None)
        if log is None:
            return load_steps(self.source, self.authvalue_of)
        size = len(log)
        stale = self._steps_cache is None or size < self._log_seen
        if not stale:
            stale = any(
                getattr(w, "entity_set", None) in REGISTRATION_SETS for w in log[self._log_seen : size]
            )
        if stale:
            self._steps_cache = load_steps(self.source, self.authvalue_of)
        self._log_seen = size
        assert self._steps_cache is not None
        return self._steps_cache

    def invalidate(self) -> None:
        """Forget the cached registrations (after rows were seeded directly, bypassing the API)."""
        self._steps_cache = None

    # ------------------------------------------------------------------ delivery
    def _job(self, step: Step, change: RecordChange) -> DeliveryJob:
        return self.jobs.new(
            system="dataverse",
            kind="webhook",
            mode="sync" if step.synchronous else "async",
            target=step.name,
            url=strip_query(step.endpoint.url),
            message=change.message,
            entity=change.logical_name,
            record_id=change.record_id,
            correlation_id=change.correlation_id,
            initiating_client_id=change.principal.client_id,
            initiating_user_id=change.principal.user_id,
            initiating_object_id=change.principal.object_id,
        )

    def _request(
        self, step: Step, change: RecordChange, operation_id: str
    ) -> tuple[bytes, dict[str, str], dict[str, str]]:
        context = remote_execution_context(
            change,
            step,
            organization_id=self.organization_id,
            organization_name=self.organization_name,
            business_unit_id=self.business_unit_id,
            operation_id=operation_id,
        )
        body, oversize = fit_size(context, _encode)
        auth_headers, params = step.endpoint.auth()
        headers = {
            "Content-Type": "application/json",
            "x-ms-dynamics-organization": self.organization_host,
            "x-ms-dynamics-entity-name": change.logical_name,
            "x-ms-dynamics-request-name": change.message,
            "x-ms-correlation-request-id": change.correlation_id,
            # One per delivery (its one retry repeats it), as issue 19 has Dataverse send.
            "x-request-id": str(uuid.uuid4()),
            **auth_headers,
        }
        if oversize:
            headers["x-ms-dynamics-msg-size-exceeded"] = "true"
        return body, headers, params

    async def _deliver(self, step: Step, change: RecordChange, job: DeliveryJob) -> PostResult:
        """Call the endpoint; once more after 502/503/504. Returns the last result."""
        body, headers, params = self._request(step, change, operation_id=str(uuid.uuid4()))
        job.status = "in_progress"
        described = f"{change.message} {change.logical_name}({change.record_id}) -> {step.name}"
        forced_timeout = self.faults.webhook_timeout(described)
        if forced_timeout:
            job.faults.append("webhook_timeout")
        result = await self._attempt(step, body, headers, params, job, forced_timeout)
        if result.status in RETRIED_STATUSES:
            if self.retry_delay:
                await asyncio.sleep(self.retry_delay)
            result = await self._attempt(step, body, headers, params, job, False)
        job.finish("succeeded" if result.ok else "failed")
        return result

    async def _attempt(
        self,
        step: Step,
        body: bytes,
        headers: dict[str, str],
        params: dict[str, str],
        job: DeliveryJob,
        forced_timeout: bool,
    ) -> PostResult:
        result = await self.poster.post(
            step.endpoint.url, body, headers=headers, params=params, seconds=self.timeout
        )
        if forced_timeout:
            # The receiver got the call, but its answer is treated as never having arrived in time.
            result = PostResult(None, "", f"timed out after {self.timeout:g} seconds", result.duration_ms)
        job.attempts.append(attempt_of(result))
        return result

    async def _call_sync(self, step: Step, change: RecordChange) -> None:
        job = self._job(step, change)
        result = await self._deliver(step, change, job)
        if result.ok:
            return
        url = strip_query(step.endpoint.url)
        if result.status is None:
            raise HookFailed(f"Webhook call to {url} failed: {result.error}")
        raise HookFailed(f"Webhook call to {url} failed: {result.status} {result.reason}".rstrip())

    def _queue_async(self, step: Step, change: RecordChange) -> None:
        job = self._job(step, change)

        async def send(applied: list[str]) -> None:
            job.faults.extend(applied)
            await self._deliver(step, change, job)

        def dropped() -> None:
            job.faults.append("drop")
            job.finish("dropped")

        self.gate.submit(
            f"{change.message} {change.logical_name}({change.record_id}) -> {step.name}", send, dropped
        )

    # ------------------------------------------------------------------ lifecycle
    async def drain(self) -> None:
        """Wait until every queued asynchronous job (including held ones) has finished."""
        self.gate.flush()
        await self.background.drain()

    def clear(self) -> None:
        self.gate.clear()
        self.jobs.clear()
        self.invalidate()

    async def close(self) -> None:
        self.gate.clear()
        await self.background.cancel()
        await self.poster.close()
