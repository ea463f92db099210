"""How ``dualwrite serve`` runs: its event loop, and its garbage collector once it has started.

Event loop: uvloop (libuv) by default, the standard one on request.

The bridge's per-change cost is mostly event-loop and HTTP plumbing (two HTTP legs per change); uvloop
runs the same asyncio code with that plumbing in C, so it is the default where it is installed (the
package depends on it except on Windows, where it does not exist). ``event_loop = "asyncio"`` in the
config file (or ``DUALWRITE_EVENT_LOOP=asyncio``) falls back to the standard loop.

Garbage collector: with Python's defaults (a young collection every 700 net allocations, a full one
every 100 of those) the collector took about a tenth of the bridge's CPU under load, most of it
walking the ~70,000 long-lived objects that startup built (modules, models, mappings) again and
again. Once the bridge has started they are frozen out of every collection, and young collections
wait for ``gc_gen0_threshold`` net allocations (default 50,000): per-change objects are freed by
reference counting long before, so collections become rare and cheap. Cycles are still collected;
at most that many objects wait for it (a few MB). docs/performance.md has the measurement.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
EventLoopName = Literal["uvloop", "asyncio"]


def loop_factory(name: EventLoopName) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for ``name``; None means the standard loop. A missing uvloop is logged, not fatal:
    the bridge behaves the same on either loop, only slower on the standard one."""
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        log.warning("uvloop is not installed: running on the standard asyncio event loop")
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T], name: EventLoopName) -> T:
    """``asyncio.run(main)`` on the named event loop."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(main)


def settle_heap(gen0_threshold: int) -> None:
    """Call once startup is done: collect its garbage, exempt what survives from later collections,
    and collect young objects every ``gen0_threshold`` net allocations (the older generations keep
    their ratios to it)."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
