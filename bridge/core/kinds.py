"""Kinds of failure the engine records (``Failure.kind``), one enum instead of free strings.

Stored as their string values, so failures recorded before this enum existed still read, and the
operations API and dashboard show these same words.
"""

from __future__ import annotations

from enum import StrEnum


class FailureKind(StrEnum):
    REJECTED = "rejected"  # the target refused the change (an asynchronous one: compensated)
    COMPENSATION_FAILED = "compensation-failed"  # refused, and putting the originator back failed too
    CONFLICT = "conflict"  # the other side's newer change won: not a malfunction
    RETRY_EXHAUSTED = "retry-exhausted"  # kept failing retryably until the attempts or the budget ran out
    TIMEOUT = "timeout"  # a synchronous originator gave up: the change was dropped or undone
    SKIPPED_ON_RESUME = "skipped-on-resume"  # an admin resumed the map "skip to live, keep the backlog"
