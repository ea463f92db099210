"""Admin access to the operations API and dashboard.

- API clients send ``Authorization: Bearer <admin token>``; bearer calls need no CSRF token (a
  browser never adds that header on its own, so a cross-site page cannot forge one).
- The dashboard logs in with a password (the admin token, or a separately configured password) and
  gets an HttpOnly, SameSite=Strict session cookie: ``<payload>.<signature>``, with an expiry, signed
  by itsdangerous (HMAC, its own key derivation and constant-time check; we no longer keep our own).
  State-changing calls made with the cookie also need ``X-CSRF-Token``: the session's nonce signed
  under another salt, so it is bound to that session and needs no server-side storage.
- Every secret comparison is constant-time, and none raises on bytes that are not UTF-8 (aiohttp
  hands those over as lone surrogates): a mangled credential is a plain 401 (403 for CSRF), never a
  500. Unauthenticated: 401 JSON under /api/, a redirect to /login for pages; the handler never runs,
  so nothing changes.
- Open without credentials: /healthz, /readyz, the login page and its stylesheet, and /webhooks/*
  (the listeners authenticate those themselves).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web
from itsdangerous import BadData, URLSafeSerializer

from bridge.core.errors import ConfigError

COOKIE_NAME = "dualwrite_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The favicon: the login page shows it too. /metrics checks its own bearer tokens (the admin token or
# the metrics token: bridge/ops/metrics_http.py), so this middleware lets it through to its handler.
PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/login", "/static/style.css", "/static/favicon.svg", "/metrics"}
)
PUBLIC_PREFIXES = ("/webhooks/",)
MIN_SECRET_LENGTH = 16

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


MAX_COOKIE_CHARS = 512  # ours are ~110; a longer one is refused unread


def _same(a: str, b: str) -> bool:
    # surrogatepass: a header's non-UTF-8 bytes arrive as lone surrogates; they match nothing.
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def json_error(status: int, error: str, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status, headers=headers)


@dataclass(frozen=True, slots=True)
class Session:
    nonce: str
    expires_at: int  # epoch seconds
    csrf_token: str


ADMIN_VIA = web.RequestKey("dualwrite_admin_via", str)  # "bearer" or "cookie"
SESSION = web.RequestKey("dualwrite_admin_session", Session)


class AdminAuth:
    """Checks admin credentials; issues and verifies session cookies and CSRF tokens."""

    def __init__(
        self,
        token: str,
        *,
        password: str | None = None,
        session_ttl_s: int = 8 * 3600,
        cookie_secure: bool | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(token) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"the admin token needs at least {MIN_SECRET_LENGTH} characters", field="admin_token"
            )
        if password is not None and len(password) < 8:
            raise ConfigError("the admin password needs at least 8 characters", field="admin_password")
        self._token = token
        self._password = password
        self._ttl = session_ttl_s
        self._cookie_secure = cookie_secure  # None: Secure when the request came over TLS
        self._clock = clock
        # Keyed by the token: rotating the token logs every session out. Two salts, two derived keys:
        # a CSRF token is never a valid cookie, nor the reverse.
        self._sessions = URLSafeSerializer(token, salt="dualwrite-ops-session-v1")
        self._csrf_tokens = URLSafeSerializer(token, salt="dualwrite-ops-csrf-v1")

    # ------------------------------------------------------------ credentials

    def check_bearer(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        return _same(header[len("Bearer ") :].strip(), self._token)

    def check_password(self, password: str) -> bool:
        # Both compared (no short-circuit on which one is configured) to keep timing uniform.
        ok_token = _same(password, self._token)
        ok_password = _same(password, self._password) if self._password is not None else False
        return ok_password if self._password is not None else ok_token

    # ------------------------------------------------------------ sessions

    def _csrf(self, nonce: str) -> str:
        return self._csrf_tokens.dumps(nonce)

    def new_session(self) -> tuple[str, Session]:
        """A fresh cookie value and the session it carries."""
        nonce = secrets.token_urlsafe(18)
        expires = int(self._clock()) + self._ttl
        cookie = self._sessions.dumps({"n": nonce, "exp": expires})
        return cookie, Session(nonce, expires, self._csrf(nonce))

    def verify_cookie(self, value: str | None) -> Session | None:
        if not value or len(value) > MAX_COOKIE_CHARS or not value.isascii():
            return None
        try:
            data = self._sessions.loads(value)  # checks the signature first, in constant time
            nonce, expires = str(data["n"]), int(data["exp"])
        except (BadData, ValueError, KeyError, TypeError):
            return None
        if expires <= self._clock():
            return None
        return Session(nonce, expires, self._csrf(nonce))

    def set_cookie(self, response: web.StreamResponse, request: web.Request, value: str) -> None:
        secure = request.secure if self._cookie_secure is None else self._cookie_secure
        response.set_cookie(
            COOKIE_NAME, value, max_age=self._ttl, path="/", httponly=True, samesite="Strict", secure=secure
        )

    @staticmethod
    def clear_cookie(response: web.StreamResponse) -> None:
        response.del_cookie(COOKIE_NAME, path="/")

    # ------------------------------------------------------------ middleware

    @staticmethod
    def is_public(path: str) -> bool:
        return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.is_public(request.path):
            return await handler(request)
        api = request.path.startswith("/api/")
        authorization = request.headers.get("Authorization")
        if authorization is not None:
            # An explicit bearer credential is judged alone: no falling back to a cookie.
            if not self.check_bearer(authorization):
                return _unauthorized(request, api, "invalid admin token")
            request[ADMIN_VIA] = "bearer"
            return await handler(request)
        session = self.verify_cookie(request.cookies.get(COOKIE_NAME))
        if session is None:
            return _unauthorized(request, api, "admin credential required")
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not _same(sent, session.csrf_token):
                return json_error(403, "csrf", f"missing or wrong {CSRF_HEADER} header for this session")
        request[ADMIN_VIA] = "cookie"
        request[SESSION] = session
        return await handler(request)


def _unauthorized(request: web.Request, api: bool, message: str) -> web.StreamResponse:
    if api or request.method not in SAFE_METHODS:
        return json_error(401, "unauthorized", message, **{"WWW-Authenticate": 'Bearer realm="dualwrite"'})
    return web.Response(status=302, headers={"Location": f"/login?next={quote(request.path_qs, safe='')}"})
