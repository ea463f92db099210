"""Which event loop runs ``dualwrite serve``: uvloop (libuv) by default, the standard one on request.

The bridge's per-change cost is mostly event-loop and HTTP plumbing (two HTTP legs per change); uvloop
runs the same asyncio code with that plumbing in C, so it is the default where it is installed (the
package depends on it except on Windows, where it does not exist). ``event_loop = "asyncio"`` in the
config file (or ``DUALWRITE_EVENT_LOOP=asyncio``) falls back to the standard loop.
"""

from __future__ import annotations

import asyncio
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
