"""Admin access: bearer token, login cookie, CSRF, what stays open, and that refusals change nothing."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.core.errors import ConfigError
from bridge.ops.auth import COOKIE_NAME, AdminAuth
from bridge.ops.pages import safe_next
from tests.listeners.rawhttp import RawAnswer, request_bytes, send_raw
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
    ("POST", "/api/alerts", {"map": "warehouse", "failures": 1, "minutes": 1}),
    ("PUT", "/api/alerts/1", {"failures": 1}),
    ("DELETE", "/api/alerts/1", None),
    ("POST", "/api/conflicts/1/resolve", {"winner": "cds"}),
]
READS = [
    "/api/maps",
    "/api/maps/warehouse",
    "/api/failures",
    "/api/deadletters",
    "/api/alerts",
    "/api/conflicts",
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
        ops.alerts.all(),
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
        "/login?next=%2F", data={"password": "open-sesame-pw"}, allow_redirects=False
    )

    assert resp.status == 303 and resp.headers["Location"] == "/"
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
    "target",
    [
        "/\t/evil.example",  # browsers drop the tab: //evil.example
        "/\n/evil.example",
        "/\r\n/evil.example",
        "/ /evil.example",
        "/%09/evil.example",
        "//evil.example/x",
        "https://evil.example",
        "/\\evil",
        "/\u3000/evil.example",
        "/api/maps",  # not a page of the dashboard
        "/login",
        "",
        None,
    ],
)
def test_login_redirects_only_to_a_page_of_the_dashboard(target: str | None) -> None:
    assert safe_next(target) == "/"


async def test_login_with_a_tab_in_next_goes_home_not_off_site(ops: Ops) -> None:
    for next_ in ("/\t/evil.example", "/\t/evil.example/", "/\\/evil.example"):
        resp = await ops.client.post(
            "/login", params={"next": next_}, data={"password": "open-sesame-pw"}, allow_redirects=False
        )
        assert resp.status == 303 and resp.headers["Location"] == "/", next_
    resp = await ops.client.post(
        "/login", data={"password": "open-sesame-pw", "next": "/"}, allow_redirects=False
    )
    assert resp.headers["Location"] == "/"


async def _raw(ops: Ops, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> RawAnswer:
    data = request_bytes(method, path, headers, b"{}" if method == "POST" else b"")
    return await send_raw(str(ops.client.host), int(ops.client.port or 0), data)


@pytest.mark.parametrize(
    "value", [b"Bearer \xff\xfe\xfd", b"Bearer caf\xe9", b"\xc3(", b"Bearer " + b"\x80" * 4000]
)
async def test_authorization_header_that_is_not_utf8_is_a_plain_401(ops: Ops, value: bytes) -> None:
    before = await _snapshot(ops)
    assert (await _raw(ops, "GET", "/api/maps", [(b"Authorization", value)])).status == 401
    assert (await _raw(ops, "POST", "/api/pause", [(b"Authorization", value)])).status == 401
    assert await _snapshot(ops) == before


@pytest.mark.parametrize(
    "cookie", ["caf\u00e9.sig", "\u00ff\u00fe.\u00fd", "a.b\u00e9", "\u00e9" * 3000, "x" * 3000 + ".y"]
)
async def test_session_cookie_that_is_not_ascii_is_a_plain_401(ops: Ops, cookie: str) -> None:
    header = [(b"Cookie", f"{COOKIE_NAME}={cookie}".encode())]
    before = await _snapshot(ops)
    assert (await _raw(ops, "GET", "/api/maps", header)).status == 401
    assert (await _raw(ops, "POST", "/api/pause", header)).status == 401
    page = await _raw(ops, "GET", "/", header)
    assert page.status == 302 and page.headers["location"].startswith("/login")
    assert await _snapshot(ops) == before


async def test_csrf_header_that_is_not_utf8_is_a_plain_403(ops: Ops) -> None:
    _, cookie = await _login(ops)
    assert cookie is not None
    before = await _snapshot(ops)
    headers = [(b"Cookie", f"{COOKIE_NAME}={cookie}".encode()), (b"X-CSRF-Token", b"\xff\xfe")]
    assert (await _raw(ops, "POST", "/api/pause", headers)).status == 403
    assert await _snapshot(ops) == before


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


@pytest.mark.parametrize("path", [b"/%FF%FE", b"/\xff\xfe", b"/api/%ED%A0%80", b"/?next=%FF"])
async def test_unauthenticated_paths_that_are_not_utf8_are_refused_not_500(ops: Ops, path: bytes) -> None:
    host, port = str(ops.client.host), int(ops.client.port or 0)
    answer = await send_raw(
        host, port, request_bytes("GET", "/", []).replace(b"GET / ", b"GET " + path + b" ", 1)
    )
    assert answer.status in (302, 400, 401, 404), answer


async def test_a_login_form_larger_than_a_form_can_be_is_refused_unread(ops: Ops) -> None:
    resp = await ops.client.post(
        "/login", data={"password": "open-sesame-pw", "pad": "x" * 5000}, allow_redirects=False
    )
    assert resp.status == 413 and COOKIE_NAME not in resp.cookies
    assert resp.headers.get("Connection") == "close"
