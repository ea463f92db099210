"""One system's health as the bridge sees it: does it answer, does it throttle, is there a token.

Fed by the system's HTTP client (``bridge.systems.http``: every answer, every failed call, every
Retry-After waited) and its token provider (``bridge.systems.auth``); read by ``GET /api/systems``
(``bridge.ops.api_systems``). Process-local, from start; thread-safe (msal runs in worker threads).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

MAX_MESSAGE = 1000  # characters of an error message kept


@dataclass(slots=True)
class SystemFigures:
    """One system's answers and token since start (``SystemHealth.figures`` hands out copies)."""

    system: str
    reachable: bool | None = None  # the last call got an answer (any status); None: no call yet
    answers: int = 0  # HTTP answers, any status
    last_answer_at: float | None = None  # epoch seconds
    last_status: int | None = None
    throttled: int = 0  # 429 answers
    retry_after_waited_s: float = 0.0  # waited before retries because the system said Retry-After
    network_errors: int = 0  # calls that got no answer (refused, reset, timed out)
    last_error: str | None = None  # the latest failed call's error (a retryable answer or the network's)
    last_error_at: float | None = None
    token_acquired_at: float | None = None
    token_expires_at: float | None = None
    token_error: str | None = None  # the last failure to get a token (None once one comes again)
    token_error_at: float | None = None


class SystemHealth:
    """Fed by one system's HTTP client and token provider (thread-safe: msal runs in threads)."""

    def __init__(self, system: str, *, clock: Callable[[], float] = time.time) -> None:
        self.system = system
        self._clock = clock
        self._lock = threading.Lock()
        self._f = SystemFigures(system)

    def answered(self, status: int) -> None:
        with self._lock:
            f = self._f
            f.reachable, f.last_answer_at, f.last_status = True, self._clock(), status
            f.answers += 1
            f.throttled += status == 429

    def failed(self, message: str, *, answered: bool) -> None:
        """A call failed retryably: with an answer (429, 5xx) or without one (``answered`` False)."""
        with self._lock:
            f = self._f
            f.last_error, f.last_error_at = message[:MAX_MESSAGE], self._clock()
            if not answered:
                f.reachable, f.network_errors = False, f.network_errors + 1

    def waited_retry_after(self, seconds: float) -> None:
        with self._lock:
            self._f.retry_after_waited_s += max(0.0, seconds)

    def token_acquired(self, expires_at: float | None) -> None:
        with self._lock:
            self._f.token_acquired_at, self._f.token_expires_at = self._clock(), expires_at
            self._f.token_error = None

    def token_failed(self, message: str) -> None:
        with self._lock:
            self._f.token_error, self._f.token_error_at = message[:MAX_MESSAGE], self._clock()

    def figures(self) -> SystemFigures:
        with self._lock:
            return replace(self._f)
