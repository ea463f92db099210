"""The deadline scope: how long every request made in the current task may take (pure contextvars).

The engine opens a scope per change (a lease's budget, or a synchronous change's answer budget);
the HTTP clients read it to bound each request and its retries. It lives in the core so that neither
side imports the other.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager

# Absolute deadline (time.monotonic()) for every request made in the current task, if any.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("dualwrite_deadline", default=None)
_urgent: contextvars.ContextVar[bool] = contextvars.ContextVar("dualwrite_urgent", default=False)


@contextmanager
def deadline_scope(seconds: float | None, *, urgent: bool = True) -> Iterator[float | None]:
    """Bound every request (and its retries) in this block to ``seconds`` from now.

    Nested scopes keep the earlier deadline. Used by the synchronous webhook path, whose answer must
    come well within Dataverse's 60 s timeout, and by the worker for every change (a lease's budget).
    ``urgent``: somebody waits for these requests (a synchronous change), so they are never held back
    to travel in a ``$batch``; an urgent outer scope stays urgent."""
    outer = _deadline.get()
    mine = None if seconds is None else time.monotonic() + seconds
    effective = mine if outer is None else (outer if mine is None else min(outer, mine))
    token = _deadline.set(effective)
    urgent_token = _urgent.set(urgent or _urgent.get())
    try:
        yield effective
    finally:
        _urgent.reset(urgent_token)
        _deadline.reset(token)


def current_deadline() -> float | None:
    return _deadline.get()


def is_urgent() -> bool:
    """A caller waits for the requests made here (see ``deadline_scope``)."""
    return _urgent.get()


@contextmanager
def own_deadline(seconds: float) -> Iterator[float]:
    """Like ``deadline_scope``, but not bound by an outer scope: for work that must go on after
    the caller's budget ended (taking back a write whose synchronous caller gave up)."""
    mine = time.monotonic() + seconds
    token = _deadline.set(mine)
    try:
        yield mine
    finally:
        _deadline.reset(token)
