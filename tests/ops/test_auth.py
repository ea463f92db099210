"""Admin access: bearer token, login cookie, CSRF, what stays open, and that refusals change nothing."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.core.errors import ConfigError
from bridge.ops.auth import COOKIE_NAME, AdminAuth, safe_next
from tests.ops.conftest import BEARER, TOKEN, Ops
from tests.ops.helpers import dead_letters, failures

STATE_CHANGING = [
    ("POST", "/api/maps/warehouse/pause", {}),
    ("POST", "/api/maps/warehouse/resume", {"mode": "skip-discard"}),
    ("POST", "/api/pause", {}),
    ("POST", "/api/resume", {"mode": "skip-discard"}),
    ("POST", "/api/failures/1/retry", {}),
    ("POST", "/api/deadletters/replay", {"all": True}),
    ("POST", "/api/deadletters/discard", {"all": True}),
    ("POST", "/api/resync", {"entity": "warehouse", "company": "USMF", "key": "1", "from": "cds"}),
    ("PUT", "/api/alerts/warehouse", {"failures": 1, "minutes": 1}),
]
READS = [
    "/api/maps",
    "/api/maps/warehouse",
    "/api/failures",
    "/api/deadletters",
    "/api/alerts",
    "/api/series",
    "/api/openapi.json",
    "/api/session",
]


async def _login(ops: Ops, password: str = "open-sesame-pw") -> tuple[int, str | None]:
    resp = await ops.client.post("/login", data={"password": password}, allow_redirects=False)
    morsel = resp.cookies.get(COOKIE_NAME)
    return resp.status, morsel.value if morsel else None


async def _csrf(ops: Ops) -> str:
    token = (await (await ops.client.get("/api/session")).json())["csrf_token"]
    assert isinstance(token, str)
    return token


async def _snapshot(ops: Ops) -> tuple[Any, ...]:
    states = [(await ops.state.get_map_state(e)).status for e in ("asset", "warehouse")]
    return (
        list(ops.controller.calls),
        await ops.queue.depth(),
        len(await ops.queue.dead_letters()),
        states,
        ops.alerts.rule_for("warehouse"),
    )


@pytest.mark.parametrize(("method", "path", "body"), STATE_CHANGING)
@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": "Basic x"}]
)
async def test_unauthenticated_changes_are_401_and_change_nothing(
    ops: Ops, method: str, path: str, body: dict[str, object], headers: dict[str, str]
) -> None:
    await dead_letters(ops.queue, 1)
    ops.controller.retryable.update(await failures(ops.state, 1))
    before = await _snapshot(ops)

    resp = await ops.client.request(method, path, json=body, headers=headers)

    assert resp.status == 401
    assert (await resp.json())["error"] == "unauthorized"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert await _snapshot(ops) == before


@pytest.mark.parametrize("path", READS)
async def test_unauthenticated_reads_are_401(ops: Ops, path: str) -> None:
    resp = await ops.client.get(path)

    assert resp.status == 401 and (await resp.json())["error"] == "unauthorized"


async def test_dashboard_redirects_to_login_without_a_session(ops: Ops) -> None:
    page = await ops.client.get("/", allow_redirects=False)
    script = await ops.client.get("/static/app.js", allow_redirects=False)
    login = await ops.client.get("/login")

    assert page.status == 302 and page.headers["Location"] == "/login?next=%2F"
    assert script.status == 302
    assert login.status == 200 and "<form" in await login.text()


async def test_wrong_password_sets_no_cookie(ops: Ops) -> None:
    status, cookie = await _login(ops, "not-the-password")

    assert (status, cookie) == (401, None)
    assert (await ops.client.get("/api/maps")).status == 401


async def test_login_sets_a_strict_httponly_cookie_that_opens_the_dashboard(ops: Ops) -> None:
    resp = await ops.client.post(
        "/login?next=%2Fapi%2Fmaps", data={"password": "open-sesame-pw"}, allow_redirects=False
    )

    assert resp.status == 303 and resp.headers["Location"] == "/api/maps"
    header = resp.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Max-Age=28800" in header
    page = await ops.client.get("/")
    assert page.status == 200 and "dualwrite" in await page.text()
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


async def test_token_is_the_password_when_none_is_configured() -> None:
    auth = AdminAuth(TOKEN)

    assert auth.check_password(TOKEN) and not auth.check_password("open-sesame-pw")


async def test_cookie_change_without_csrf_token_is_refused(ops: Ops) -> None:
    await _login(ops)

    missing = await ops.client.post("/api/maps/warehouse/pause", json={})
    wrong = await ops.client.post("/api/maps/warehouse/pause", json={}, headers={"X-CSRF-Token": "forged"})

    assert missing.status == 403 and wrong.status == 403
    assert (await missing.json())["error"] == "csrf"
    assert ops.controller.calls == []


async def test_cookie_change_with_the_session_csrf_token_works(ops: Ops) -> None:
    await _login(ops)
    token = await _csrf(ops)

    resp = await ops.client.post("/api/maps/warehouse/pause", json={}, headers={"X-CSRF-Token": token})

    assert resp.status == 200
    assert ops.controller.calls == [("pause", ("warehouse", "paused by admin"))]


async def test_csrf_token_of_another_session_is_refused(ops: Ops) -> None:
    _, other = ops.auth.new_session()
    await _login(ops)

    resp = await ops.client.post("/api/pause", json={}, headers={"X-CSRF-Token": other.csrf_token})

    assert resp.status == 403 and ops.controller.calls == []


async def test_bearer_calls_need_no_csrf_token(ops: Ops) -> None:
    session = await (await ops.client.get("/api/session", headers=BEARER)).json()
    resp = await ops.client.post("/api/pause", json={}, headers=BEARER)

    assert session == {"via": "bearer", "csrf_token": None, "expires_at": None}
    assert resp.status == 200


async def test_logout_needs_csrf_and_ends_the_session(ops: Ops) -> None:
    await _login(ops)
    refused = await ops.client.post("/logout", allow_redirects=False)
    token = await _csrf(ops)

    resp = await ops.client.post("/logout", headers={"X-CSRF-Token": token}, allow_redirects=False)

    assert refused.status == 403
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    assert (await ops.client.get("/api/maps")).status == 401


def test_expired_and_tampered_cookies_are_rejected() -> None:
    now = [1_000_000.0]
    auth = AdminAuth(TOKEN, session_ttl_s=60, clock=lambda: now[0])
    cookie, _ = auth.new_session()
    payload, signature = cookie.split(".")

    assert auth.verify_cookie(cookie) is not None
    assert auth.verify_cookie(payload + "." + signature[:-2] + "AA") is None
    assert auth.verify_cookie(payload[:-2] + "x." + signature) is None
    assert AdminAuth(TOKEN + "-rotated").verify_cookie(cookie) is None
    now[0] += 61
    assert auth.verify_cookie(cookie) is None


def test_short_secrets_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="admin_token"):
        AdminAuth("short")
    with pytest.raises(ConfigError, match="admin_password"):
        AdminAuth(TOKEN, password="pw")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/api/maps", "/api/maps"),
        ("//evil.example/x", "/"),
        ("https://evil.example", "/"),
        ("/\\evil", "/"),
        (None, "/"),
    ],
)
def test_login_redirects_only_to_local_paths(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


async def test_webhooks_are_left_to_their_own_auth() -> None:
    auth = AdminAuth(TOKEN)
    app = web.Application(middlewares=[auth.middleware])

    async def webhook(request: web.Request) -> web.Response:
        return web.json_response({"received": True})

    app.router.add_post("/webhooks/cds", webhook)
    app.router.add_post("/api/pause", webhook)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    try:
        hook = await client.post("/webhooks/cds?code=listener-checks-this", json={})
        api = await client.post("/api/pause", json={})
    finally:
        await client.close()

    assert hook.status == 200 and api.status == 401
