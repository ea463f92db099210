"""The dashboard's pages: ``/`` (the dashboard), ``/login``, ``/logout`` and ``/static/*``.

The pages are static files; the dashboard's script reads everything from the JSON API. Access is
checked by ``AdminAuth.middleware`` before these handlers run (``/login`` is public).
"""

from __future__ import annotations

import asyncio
import html
from pathlib import Path

from aiohttp import web

from bridge.ops.auth import AdminAuth
from bridge.ops.openapi import Handler

STATIC_DIR = Path(__file__).parent / "static"
FAILED_LOGIN_DELAY_S = 0.25  # slows password guessing without locking admins out
MAX_LOGIN_BODY = 4096  # a password and a next= fit many times over; the form is read before any check
ERROR_MARKER = "<!--login-error-->"
HOME = "/"
# The dashboard's pages (path -> file), the only places a login may send the browser back to.
PAGES = {HOME: "index.html"}

SECURITY_HEADERS = {
    # Nothing is fetched from anywhere but the bridge itself; no inline script.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if not request.path.startswith("/webhooks/"):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


def _page(name: str, *, status: int = 200, error: str | None = None) -> web.Response:
    text = (STATIC_DIR / name).read_text(encoding="utf-8")
    if error:
        text = text.replace(ERROR_MARKER, f'<p class="login-error" role="alert">{html.escape(error)}</p>')
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )


def safe_next(target: str | None) -> str:
    """Where to go after login: ``target`` only if it is exactly one of the dashboard's pages, else
    its home. An allow-list, not a filter: ``/\t/evil.example`` passed the old "starts with one /"
    check, and browsers drop the tab and go to //evil.example."""
    return target if target in PAGES else HOME


def page_routes(auth: AdminAuth) -> list[web.AbstractRouteDef]:
    async def page(request: web.Request) -> web.Response:
        return _page(PAGES[request.path])

    async def login_form(request: web.Request) -> web.Response:
        return _page("login.html")

    async def login(request: web.Request) -> web.StreamResponse:
        if request.content_length is None or request.content_length > MAX_LOGIN_BODY:
            # Refused unread (and the connection closed): no one holds a connection on an endless form.
            response = web.Response(status=413, text=f"a login form has at most {MAX_LOGIN_BODY} bytes")
            response.force_close()
            return response
        form = await request.post()
        password = form.get("password")
        target = safe_next(request.query.get("next") or str(form.get("next") or ""))
        if not isinstance(password, str) or not auth.check_password(password):
            await asyncio.sleep(FAILED_LOGIN_DELAY_S)
            return _page("login.html", status=401, error="Wrong password.")
        cookie, _ = auth.new_session()
        response = web.Response(status=303, headers={"Location": target})
        auth.set_cookie(response, request, cookie)
        return response

    async def logout(request: web.Request) -> web.StreamResponse:
        response = web.Response(status=303, headers={"Location": "/login"})
        auth.clear_cookie(response)
        return response

    return [
        *(web.get(path, page) for path in PAGES),
        web.get("/login", login_form),
        web.post("/login", login),
        web.post("/logout", logout),
        web.static("/static", STATIC_DIR, show_index=False),
    ]
