"""Who acted, as the failures' life cycle and the activity log record it.

"admin token" for a bearer call; "admin session <8 hex digits>" for a dashboard session: a digest of
the session's nonce, so one login's actions read as one actor without the log holding the nonce (the
CSRF token is derived from it)."""

from __future__ import annotations

import hashlib

from aiohttp import web

from bridge.ops.auth import SESSION

TOKEN_ACTOR = "admin token"
SESSION_ACTOR = "admin session"


def actor_of(request: web.Request) -> str:
    session = request.get(SESSION)
    if session is None:
        return TOKEN_ACTOR
    digest = hashlib.sha256(session.nonce.encode("ascii")).hexdigest()[:8]
    return f"{SESSION_ACTOR} {digest}"
