"""Admin access to the operations API and dashboard.

- API clients send ``Authorization: Bearer <admin token>``; bearer calls need no CSRF token (a
  browser never adds that header on its own, so a cross-site page cannot forge one).
- The dashboard logs in with a password (the admin token, or a separately configured password) and
  gets an HttpOnly, SameSite=Strict session cookie: ``<payload>.<HMAC-SHA256>``, with an expiry.
  State-changing calls made with the cookie also need ``X-CSRF-Token``: an HMAC of the session's
  nonce, so it is bound to that session and needs no server-side storage.
- Every secret comparison is constant-time. Unauthenticated: 401 JSON under /api/, a redirect to
  /login for pages; the handler never runs, so nothing changes.
- Open without credentials: /healthz, /readyz, the login page and its stylesheet, and /webhooks/*
  (the listeners authenticate those themselves).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web

from bridge.core.errors import ConfigError

COOKIE_NAME = "dualwrite_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/login", "/static/style.css"})
PUBLIC_PREFIXES = ("/webhooks/",)
MIN_SECRET_LENGTH = 16

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


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
        # Derived from the token: rotating the token logs every session out.
        self._key = hmac.new(token.encode(), b"dualwrite-ops-session-v1", hashlib.sha256).digest()

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

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def _csrf(self, nonce: str) -> str:
        return _b64(hmac.new(self._key, b"csrf:" + nonce.encode("ascii"), hashlib.sha256).digest())

    def new_session(self) -> tuple[str, Session]:
        """A fresh cookie value and the session it carries."""
        nonce = secrets.token_urlsafe(18)
        expires = int(self._clock()) + self._ttl
        payload = _b64(json.dumps({"n": nonce, "exp": expires}, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}", Session(nonce, expires, self._csrf(nonce))

    def verify_cookie(self, value: str | None) -> Session | None:
        if not value or value.count(".") != 1:
            return None
        payload, signature = value.split(".")
        if not _same(signature, self._sign(payload)):
            return None
        try:
            data = json.loads(_unb64(payload))
            nonce, expires = str(data["n"]), int(data["exp"])
        except (ValueError, KeyError, TypeError):
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


def safe_next(target: str | None) -> str:
    """Only local absolute paths after login (no open redirect to another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
