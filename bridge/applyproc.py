"""An apply process: applies asynchronous changes for ``dualwrite serve`` (``sync.apply_processes``).

The serve process starts it as ``python -m bridge.applyproc`` and talks frames
(``bridge.engine.applywire``) over its stdin and stdout; its log goes to stderr, as the serve
process's does. It owns no queue: the serve process leases a change, hands it over, and settles the
lease with the answer, so per-record order, retries, compensation and dead letters stay where they
were. Here the change goes through the same ``Applier`` as in-process: the ledger (the state store
the settings choose, ``bridge.state.factory``: state.db shared with the serve process through
SQLite's own locking) and the write to the target system. Like ``bridge.app`` it is a composition
root: it alone wires adapters (state, system clients) into the engine's ``Applier``.

It exits when its stdin closes, so it never outlives the serve process (a crash included): what it
had in hand is still leased there and is handed out again, and the ledger makes a repeat harmless.
It runs ``sync.apply_nice`` below the serve process's CPU priority (``--nice=N``): on busy cores the
webhooks and synchronous changes in the serve process go first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sys
from typing import Any, BinaryIO

from bridge.core.errors import SyncError
from bridge.core.events import ChangeEvent
from bridge.core.mapping import load_mappings
from bridge.engine import applywire
from bridge.engine.apply import Applier
from bridge.runtime import run, settle_heap
from bridge.settings import Settings
from bridge.state.base import StatePort
from bridge.state.factory import create_state
from bridge.systems.connect import Systems, connect_systems
from bridge.systems.sides import sides_for

log = logging.getLogger("bridge.applyproc")

COUNTS_EVERY_S = 1.0  # how often the serve process hears this process's request counts


class ApplyProcess:
    def __init__(self, settings: Settings, systems: Systems, state: StatePort, own_ids: set[str]) -> None:
        self.systems = systems
        self.own_ids = own_ids
        mappings = load_mappings(settings.mappings_dir)
        self.applier = Applier(
            mappings=mappings, state=state, sides=sides_for(systems, mappings), own_ids=own_ids
        )
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self._writer: asyncio.StreamWriter | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        reporter = asyncio.create_task(self.report_counts())
        try:
            await self._serve(reader)
        finally:
            reporter.cancel()

    async def _serve(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                message = await applywire.read_frame(reader)
            except asyncio.IncompleteReadError:
                return  # stdin closed: the serve process is gone or stopping
            kind = message["t"]
            if kind == "apply":
                request_id = int(message["id"])
                task = asyncio.create_task(self._apply(request_id, message["event"]))
                self.tasks[request_id] = task
                task.add_done_callback(functools.partial(self._forget, request_id))
            elif kind == "cancel":
                running = self.tasks.get(int(message["id"]))
                if running is not None:
                    running.cancel()
            elif kind == "ids":
                self.own_ids.update(str(i) for i in message["ids"])
            else:
                log.warning("apply process: unknown frame %r ignored", kind)

    def _forget(self, request_id: int, _task: asyncio.Task[None]) -> None:
        self.tasks.pop(request_id, None)

    async def _apply(self, request_id: int, body: dict[str, Any]) -> None:
        try:
            event = ChangeEvent.model_validate(body)
            answer = applywire.done(request_id, await self.applier.apply(event))
        except asyncio.CancelledError:
            return  # the serve process gave up on it (its budget); it retries the lease itself
        except Exception as exc:  # every failure goes back: the serve process decides what it means
            if not isinstance(exc, SyncError):
                log.exception("unexpected error applying %s", body.get("event_id"))
            answer = applywire.failed(request_id, exc)
        self._send(answer)

    def _send(self, message: dict[str, Any]) -> None:
        assert self._writer is not None
        self._writer.write(applywire.frame(message))

    async def report_counts(self) -> None:
        """Every COUNTS_EVERY_S, this process's request counts if they moved (the dashboard's)."""
        last: dict[str, Any] = {}
        while True:
            await asyncio.sleep(COUNTS_EVERY_S)
            counts = self.counts()
            if counts != last:
                self._send(counts)
                last = counts

    def counts(self) -> dict[str, Any]:
        return {"t": "counts", **self.systems.request_counts()}

    async def stop(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.write(applywire.frame(self.counts()))
                await self._writer.drain()


async def _pipes(out: BinaryIO) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=applywire.MAX_FRAME)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, out)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


async def _read_config(reader: asyncio.StreamReader) -> dict[str, Any]:
    message = await applywire.read_frame(reader)
    if message["t"] != "config":
        raise applywire.ApplyProcessError(f"expected the config frame first, got {message['t']!r}")
    return message


async def main(out: BinaryIO) -> int:
    reader, writer = await _pipes(out)
    config = await _read_config(reader)
    logging.basicConfig(
        level=int(config.get("log_level", logging.INFO)),
        format="%(asctime)s %(levelname)s [apply %(process)d] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = Settings.model_validate(config["settings"])  # the secret goes to the clients alone
        systems = connect_systems(settings, config["client_secret"])
        state = create_state(settings)
        await state.open()
        proc = ApplyProcess(settings, systems, state, {str(i) for i in config.get("own_ids", [])})
    except Exception as exc:  # tell the serve process why, then go
        writer.write(applywire.frame({"t": "fatal", "message": f"{type(exc).__name__}: {exc}"}))
        await writer.drain()
        return 1
    writer.write(applywire.frame({"t": "ready", "pid": os.getpid()}))
    settle_heap(settings.gc_gen0_threshold)
    try:
        await proc.serve(reader, writer)
    finally:
        await proc.stop()
        await systems.close()
        await state.close()
    return 0


def lower_priority(argv: list[str]) -> int:
    """Apply ``--nice=N`` (``sync.apply_nice``) to this process; the niceness it now runs at.

    Called before the event loop starts, while this is the only thread: on Linux a thread's
    niceness is its own, and the threads started later (the ledger's, libuv's) inherit it.
    """
    increment = next((int(a.split("=", 1)[1]) for a in argv if a.startswith("--nice=")), 0)
    if not hasattr(os, "nice"):  # no Unix priorities here: everything runs at one priority
        return 0
    return os.nice(max(increment, 0))


def _entry() -> int:
    lower_priority(sys.argv[1:])
    # The frames own stdout: keep a private copy of it and point fd 1 at stderr, so a stray print
    # (ours or a library's) lands in the log instead of corrupting the protocol.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    return run(main(out), "asyncio" if "--event-loop=asyncio" in sys.argv[1:] else "uvloop")


if __name__ == "__main__":
    sys.exit(_entry())
