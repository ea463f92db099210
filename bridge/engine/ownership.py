"""Who applies a synchronous change when several bridge replicas share one queue.

A Dataverse synchronous step waits inside the save's transaction for the webhook call it made, and
only the replica holding that call can tell whether its caller still waits. So that replica, the
change's *owner* (``ChangeEvent.received_by``, its lease owner id), applies the change itself while
it holds the record's lease; no other replica ever applies it:

- the owner leases it as it queues it when its record is idle (``LeasingEnqueue``), else takes it
  as soon as its record's turn comes (``LeaseClaim.claim``, polled while the caller waits; after a
  failed attempt, once its backoff has passed) or when its own worker loop meets it;
- another replica that leases it while its owner's caller may still wait (before the change's
  deadline and a grace for clocks) hands it back at once, with a delay to that deadline that keeps
  every replica's worker loop off it (the owner's claim goes past a delay); on a queue without
  ``CLAIM`` the delay is short instead, and the owner's worker loop takes it in turn;
- once that deadline has passed, the owner has answered (504) and never starts the write any more,
  so whichever replica leases the change next settles it as abandoned, exactly once under its
  lease: reverted from the undo journal if a write was journalled and not recorded, kept if the
  ledger records it (the owner's answer may have gone out), dropped otherwise.

A change with no owner (queued by a bridge before replicas, or by an earlier run of this replica)
is abandoned at once, as before: its call died with the process that held it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from bridge.core.events import ChangeEvent
from bridge.queue.base import LeaseClaim, QueuedEvent

# Replicas' clocks are compared (one replica's receipt time against another's now): NTP keeps them
# well within this. A clock further off than this only turns a waiting save into a 504 (nothing is
# applied without its owner), never into a divergence.
CLOCK_GRACE = timedelta(seconds=2)
HAND_BACK_DELAY_S = 0.1  # without CLAIM: how long a handed-back change stays out of the leases
CLAIM_POLL_S = (0.005, 0.1)  # the owner's claim polls: first pause, longest pause


def held_elsewhere(event: ChangeEvent, owner: str, deadline: datetime, now: datetime) -> bool:
    """``event`` belongs to another live replica's waiting call: hand it back, never apply it."""
    return event.received_by not in (None, owner) and now < deadline + CLOCK_GRACE


def hand_back_delay(deadline: datetime, now: datetime, *, owner_claims: bool) -> float:
    """How long a handed-back change stays out of the worker loops' leases: until its owner can no
    longer want it when the owner claims it (nobody else may apply it before), else briefly."""
    if not owner_claims:
        return HAND_BACK_DELAY_S
    return max((deadline + CLOCK_GRACE - now).total_seconds(), HAND_BACK_DELAY_S)


def hand_back_note(event: ChangeEvent) -> str:
    return f"handed back to replica {event.received_by}, which holds its synchronous originator's call"


async def claim_turn(
    claimer: LeaseClaim,
    event: ChangeEvent,
    *,
    lease_s: float,
    deadline: datetime,
    waiting: Callable[[], bool],
    now: Callable[[], datetime],
    start_after: float = 0.0,
) -> QueuedEvent | None:
    """After ``start_after`` seconds (a failed attempt's backoff), poll until the owner's change can
    be leased (its record's turn has come), the caller stops waiting (``waiting()`` false:
    answered, gave up, stopping) or its deadline passes."""
    if start_after > 0:
        await asyncio.sleep(start_after)
    pause, longest = CLAIM_POLL_S
    while waiting() and now() < deadline:
        leased = await claimer.claim(event, lease_s)
        if leased is not None:
            return leased
        await asyncio.sleep(pause)
        pause = min(pause * 2, longest)
    return None
