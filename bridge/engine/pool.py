"""The serve process's side of its apply processes (``sync.apply_processes``).

Python runs one thread of Python at a time, so one process applies changes on one core. With
``apply_processes = N`` the serve process keeps the webhooks, the queue, synchronous changes, the
dashboard and the metrics, and hands each asynchronous change it leased to the least busy of N
helper processes (``bridge.applyproc``), which write the ledger and the target system.

Nothing moves out of the serve process's hands: the change stays leased there until the answer
comes back, and the answer is the ``Applied`` or the error the in-process applier would have given,
so retries, compensation, failures and metrics are unchanged. An apply process that exits fails what
it held with a retryable error (those changes are retried, as after any failed write) and is started
again after a pause; while none is up, changes are applied in the serve process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sys
from collections.abc import Collection
from typing import Any

from bridge.core.errors import ConfigError
from bridge.core.events import ChangeEvent
from bridge.engine import applywire
from bridge.engine.apply import Applied, Applier
from bridge.engine.applywire import ApplyProcessError
from bridge.metrics import REQUEST_COUNT_KEYS
from bridge.settings import SECRET_KEYS, Settings

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
RESTART_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)


class _Helper:
    """One apply process and the calls it has in hand."""

    def __init__(self, index: int, proc: asyncio.subprocess.Process) -> None:
        self.index = index
        self.proc = proc
        self.pending: dict[int, asyncio.Future[Applied]] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self.alive = True
        self.reader_task: asyncio.Task[None] | None = None

    @property
    def stdin(self) -> asyncio.StreamWriter:
        assert self.proc.stdin is not None
        return self.proc.stdin

    async def read_frame(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        return await applywire.read_frame(self.proc.stdout)

    def fail_pending(self, why: str) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ApplyProcessError(why))
        self.pending.clear()


class ApplyPool:
    def __init__(
        self, *, settings: Settings, client_secret: str, own_ids: set[str], local: Applier, log_level: int
    ) -> None:
        self.count = settings.sync.apply_processes
        self.settings = settings
        self._client_secret = client_secret
        self._own_ids = own_ids
        self._log_level = log_level
        self.local = local  # applies while no apply process is up
        self.helpers: list[_Helper | None] = [None] * self.count
        self._ids = itertools.count(1)
        self._retired: dict[str, dict[str, int]] = {}  # counts of apply processes that exited
        self._restarts: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.restarts = 0  # observability (and tests)
        self.applied_locally = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start every apply process; a process that cannot start (bad settings) is a ConfigError."""
        results = await asyncio.gather(*(self._spawn(i) for i in range(self.count)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.stop()
            raise ConfigError(f"apply process did not start: {errors[0]}", field="sync.apply_processes")

    async def _spawn(self, index: int) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bridge.applyproc",
            f"--event-loop={self.settings.event_loop}",
            f"--nice={self.settings.sync.apply_nice}",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=applywire.MAX_FRAME,
        )
        helper = _Helper(index, proc)
        helper.stdin.write(applywire.frame(self._config()))
        try:
            first = await asyncio.wait_for(helper.read_frame(), START_TIMEOUT_S)
        except (TimeoutError, asyncio.IncompleteReadError, ApplyProcessError) as exc:
            await _end(proc)
            raise ApplyProcessError(f"apply process {index} did not answer: {exc!r}") from None
        if first["t"] != "ready":
            await _end(proc)
            raise ApplyProcessError(str(first.get("message") or f"unexpected first frame {first['t']!r}"))
        self.helpers[index] = helper
        helper.reader_task = asyncio.create_task(self._read(helper), name=f"dualwrite-apply-{index}")
        log.info("apply process %d started (pid %d)", index, proc.pid)

    def _config(self) -> dict[str, Any]:
        return config_frame(self.settings, self._client_secret, self._own_ids, self._log_level)

    async def stop(self) -> None:
        self._stopping = True
        for task in list(self._restarts):
            task.cancel()
        helpers = [h for h in self.helpers if h is not None]
        for helper in helpers:
            with contextlib.suppress(Exception):
                helper.stdin.write_eof()  # the apply process finishes when its stdin ends
        await asyncio.gather(*(_end(h.proc, STOP_TIMEOUT_S) for h in helpers))
        for helper in helpers:
            if helper.reader_task is not None:
                await asyncio.gather(helper.reader_task, return_exceptions=True)
            helper.fail_pending("the bridge is stopping")

    # ------------------------------------------------------------------ the answers
    async def _read(self, helper: _Helper) -> None:
        why = "exited"
        try:
            await self._answers(helper)
        except asyncio.IncompleteReadError:
            pass  # its stdout ended: the process is exiting
        except (ApplyProcessError, KeyError, ValueError, TypeError) as exc:
            why = f"broke the protocol ({exc})"
            helper.proc.kill()
        helper.alive = False
        code = await helper.proc.wait()
        helper.fail_pending(f"apply process {helper.index} {why} (exit code {code})")
        for system, counts in helper.counts.items():
            retired = self._retired.setdefault(system, dict.fromkeys(REQUEST_COUNT_KEYS, 0))
            for key in REQUEST_COUNT_KEYS:
                retired[key] += int(counts.get(key, 0))
        helper.counts = {}
        if not self._stopping:
            log.error("apply process %d %s (exit code %s): restarting it", helper.index, why, code)
            self.helpers[helper.index] = None
            task = asyncio.create_task(self._restart(helper.index))
            self._restarts.add(task)
            task.add_done_callback(self._restarts.discard)

    @staticmethod
    async def _answers(helper: _Helper) -> None:
        while True:
            message = await helper.read_frame()
            kind = message["t"]
            if kind in ("done", "failed"):
                future = helper.pending.pop(int(message["id"]), None)
                if future is None or future.done():
                    continue  # the caller gave up (its budget): the lease is retried anyway
                if kind == "done":
                    future.set_result(applywire.applied_from(message))
                else:
                    future.set_exception(applywire.error_from_wire(message["error"]))
            elif kind == "counts":
                helper.counts = {s: message[s] for s in ("cds", "scm") if isinstance(message.get(s), dict)}

    async def _restart(self, index: int) -> None:
        for attempt in itertools.count():
            await asyncio.sleep(RESTART_DELAYS_S[min(attempt, len(RESTART_DELAYS_S) - 1)])
            try:
                await self._spawn(index)
            except Exception as exc:  # keep trying: meanwhile the serve process applies
                log.error("apply process %d could not be restarted: %s", index, exc)
                continue
            self.restarts += 1
            return

    # ------------------------------------------------------------------ the calls
    async def apply(self, event: ChangeEvent) -> Applied:
        """Apply ``event`` in the least busy apply process (in-process while none is up)."""
        helper = min(
            (h for h in self.helpers if h is not None and h.alive), key=lambda h: len(h.pending), default=None
        )
        if helper is None:
            self.applied_locally += 1
            return await self.local.apply(event)
        request_id = next(self._ids)
        future: asyncio.Future[Applied] = asyncio.get_running_loop().create_future()
        helper.pending[request_id] = future
        try:
            helper.stdin.write(applywire.apply_frame(request_id, event))
            await helper.stdin.drain()
            return await future
        except asyncio.CancelledError:
            if helper.pending.pop(request_id, None) is not None and helper.alive:
                with contextlib.suppress(Exception):
                    helper.stdin.write(applywire.frame({"t": "cancel", "id": request_id}))
            raise
        except (ConnectionError, BrokenPipeError) as exc:
            helper.pending.pop(request_id, None)
            raise ApplyProcessError(f"apply process {helper.index} is not reachable: {exc}") from None

    def share_ids(self, own_ids: Collection[str]) -> None:
        """Our own principals, learned after the apply processes started (echo detection)."""
        for helper in self.helpers:
            if helper is not None and helper.alive:
                with contextlib.suppress(Exception):
                    helper.stdin.write(applywire.frame({"t": "ids", "ids": sorted(own_ids)}))

    def request_counts(self, system: str) -> dict[str, int]:
        """Requests the apply processes sent to ``system`` (as last reported, about once a second)."""
        total = dict(self._retired.get(system, dict.fromkeys(REQUEST_COUNT_KEYS, 0)))
        for helper in self.helpers:
            if helper is not None:
                for key in REQUEST_COUNT_KEYS:
                    total[key] += int(helper.counts.get(system, {}).get(key, 0))
        return total

    @property
    def running(self) -> int:
        return sum(1 for h in self.helpers if h is not None and h.alive)


def config_frame(
    settings: Settings, client_secret: str, own_ids: Collection[str], log_level: int
) -> dict[str, Any]:
    """What an apply process starts from. Secrets travel in the pipe, never on the command line or
    in the environment we set, and only the one it needs."""
    return {
        "t": "config",
        "settings": settings.model_dump(mode="json", exclude=set(SECRET_KEYS)),
        "client_secret": client_secret,
        "own_ids": sorted(own_ids),
        "log_level": log_level,
    }


async def _end(proc: asyncio.subprocess.Process, timeout: float = 0.0) -> None:
    """Wait up to ``timeout`` for ``proc`` to exit, then kill it."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), timeout)
        return
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()
