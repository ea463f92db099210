"""The emulated Entra ID and the bearer check of both emulators, over real HTTPS."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import jwt
import pytest

from bridge.sandbox.identity import TokenAuthority, object_id_for, user_id_for
from bridge.sandbox.pytest_plugin import bearer, msal_app, requests_session
from bridge.sandbox.runtime import Sandbox, SandboxConfig, SandboxInfo


def _system_urls(info: SandboxInfo) -> dict[str, str]:
    # One authenticated read per system, as written in Microsoft's examples.
    return {"dataverse": f"{info.cds_url}/WhoAmI", "fno": f"{info.scm_url}/LegalEntities"}


async def _token_call(http: aiohttp.ClientSession, info: SandboxInfo, **form: str) -> tuple[int, Any]:
    async with http.post(f"{info.authority}/oauth2/v2.0/token", data=form) as resp:
        return resp.status, await resp.json()


async def test_discovery_document_and_keys_are_absolute_https(
    sandbox_info: SandboxInfo, sandbox_http: Any
) -> None:
    async with sandbox_http.get(f"{sandbox_info.authority}/v2.0/.well-known/openid-configuration") as resp:
        doc = await resp.json()
    for key in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
        assert doc[key].startswith("https://127.0.0.1:")
    async with sandbox_http.get(doc["jwks_uri"]) as resp:
        keys = (await resp.json())["keys"]
    assert keys[0]["kty"] == "RSA" and keys[0]["kid"]


async def test_unknown_tenant_gets_aadsts90002(sandbox_info: SandboxInfo, sandbox_http: Any) -> None:
    base = sandbox_info.authority.rsplit("/", 1)[0]
    async with sandbox_http.get(f"{base}/other-tenant/v2.0/.well-known/openid-configuration") as resp:
        assert resp.status == 400
        assert (await resp.json())["error_codes"] == [90002]


async def test_msal_token_calls_both_emulators(sandbox_info: SandboxInfo) -> None:
    info = sandbox_info

    def flow() -> tuple[dict[str, Any], dict[str, Any], dict[str, int], str]:
        app = msal_app(info)
        cds = app.acquire_token_for_client([info.cds_scope])
        scm = app.acquire_token_for_client([info.scm_scope])
        again = app.acquire_token_for_client([info.cds_scope])
        session = requests_session(info)
        urls = _system_urls(info)
        statuses = {
            "dataverse": session.get(urls["dataverse"], headers=bearer(cds["access_token"])).status_code,
            "fno": session.get(urls["fno"], headers=bearer(scm["access_token"])).status_code,
        }
        who = session.get(urls["dataverse"], headers=bearer(cds["access_token"])).json()
        return cds, who, statuses, again["token_source"]

    cds, who, statuses, source = await asyncio.to_thread(flow)
    assert statuses == {"dataverse": 200, "fno": 200}
    assert who["UserId"] == user_id_for(info.client_id) == info.bridge_user_id
    assert source == "cache"  # expires_in >= 600, so msal keeps it
    claims = jwt.decode(cds["access_token"], options={"verify_signature": False})
    assert claims["aud"] == info.cds_origin
    assert claims["appid"] == info.client_id
    assert claims["oid"] == object_id_for(info.client_id)
    assert claims["exp"] - claims["iat"] >= 600


async def test_user_client_is_a_different_principal(sandbox: Sandbox, sandbox_http: Any) -> None:
    info = sandbox.info
    async with sandbox_http.get(
        _system_urls(info)["dataverse"], headers=bearer(sandbox.token("user"))
    ) as resp:
        who = await resp.json()
    assert who["UserId"] == info.user_user_id != info.bridge_user_id


async def test_wrong_secret_is_aadsts7000215(sandbox_info: SandboxInfo, sandbox_http: Any) -> None:
    status, body = await _token_call(
        sandbox_http,
        sandbox_info,
        grant_type="client_credentials",
        client_id=sandbox_info.client_id,
        client_secret="wrong",
        scope=sandbox_info.cds_scope,
    )
    assert status == 401
    assert body["error"] == "invalid_client"
    assert body["error_description"].startswith("AADSTS7000215: ")
    assert body["error_codes"] == [7000215]
    assert {"timestamp", "trace_id", "correlation_id"} <= body.keys()


@pytest.mark.parametrize(
    ("form", "status", "error", "code"),
    [
        ({"client_id": "nobody", "client_secret": "x"}, 400, "unauthorized_client", 700016),
        ({"scope": "https://elsewhere.example/.default"}, 400, "invalid_resource", 500011),
        ({"scope": "SCOPE_WITHOUT_DEFAULT"}, 400, "invalid_scope", 1002012),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
        ({"client_id": ""}, 400, "invalid_request", 900144),
    ],
)
async def test_bad_token_requests_get_entra_errors(
    sandbox_info: SandboxInfo, sandbox_http: Any, form: dict[str, str], status: int, error: str, code: int
) -> None:
    fields = {
        "grant_type": "client_credentials",
        "client_id": sandbox_info.client_id,
        "client_secret": sandbox_info.client_secret,
        "scope": sandbox_info.cds_scope,
        **form,
    }
    if fields["scope"] == "SCOPE_WITHOUT_DEFAULT":
        fields["scope"] = sandbox_info.cds_origin
    got_status, body = await _token_call(sandbox_http, sandbox_info, **fields)
    assert (got_status, body["error"], body["error_codes"]) == (status, error, [code])


def _bad_tokens(sandbox: Sandbox, system: str) -> dict[str, str]:
    origin = sandbox.info.cds_origin if system == "dataverse" else sandbox.info.scm_origin
    other = sandbox.info.scm_origin if system == "dataverse" else sandbox.info.cds_origin
    forger = TokenAuthority(
        tenant_id=sandbox.info.tenant_id,
        clients=sandbox.authority.clients.values(),
        base_url=sandbox.authority.base_url,
    )
    forger.kid = sandbox.authority.kid  # same key id, different key: only the signature is wrong
    return {
        "expired": sandbox.authority.issue(
            sandbox.info.client_id, origin, now=time.time() - 7200, lifetime=3600
        ),
        "not yet valid": sandbox.authority.issue(sandbox.info.client_id, origin, now=time.time() + 600),
        "wrongly signed": forger.issue(sandbox.info.client_id, origin),
        "wrong audience": sandbox.authority.issue(sandbox.info.client_id, other),
        "garbage": "not.a.jwt",
    }


@pytest.mark.parametrize("system", ["dataverse", "fno"])
async def test_emulators_reject_bad_tokens_with_401(sandbox: Sandbox, sandbox_http: Any, system: str) -> None:
    url = _system_urls(sandbox.info)[system]
    async with sandbox_http.get(url) as resp:
        assert resp.status == 401
        assert await resp.read() == b""
        challenge = resp.headers["WWW-Authenticate"]
        assert challenge.startswith("Bearer ") and f"authorization_uri={sandbox.info.authority}/" in challenge
    for why, token in _bad_tokens(sandbox, system).items():
        async with sandbox_http.get(url, headers=bearer(token)) as resp:
            assert resp.status == 401, why
            assert await resp.read() == b"", why
            if system == "dataverse":
                assert "error=invalid_token" in resp.headers["WWW-Authenticate"], why


@pytest.fixture
def sandbox_config(sandbox_config: SandboxConfig) -> SandboxConfig:
    return sandbox_config.model_copy(update={"token_lifetime": 900})


async def test_configured_lifetime_is_reported_and_enforced(
    sandbox_info: SandboxInfo, sandbox_http: Any
) -> None:
    status, body = await _token_call(
        sandbox_http,
        sandbox_info,
        grant_type="client_credentials",
        client_id=sandbox_info.user_client_id,
        client_secret=sandbox_info.user_client_secret,
        scope=sandbox_info.scm_scope,
    )
    assert status == 200 and body["expires_in"] == 900
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 900


async def test_admin_api_requires_its_key(sandbox_info: SandboxInfo, sandbox_http: Any) -> None:
    for base in (sandbox_info.cds_admin_url, sandbox_info.scm_admin_url):
        async with sandbox_http.get(f"{base}/faults") as resp:
            assert resp.status == 401
        async with sandbox_http.get(f"{base}/faults", headers={"x-sandbox-admin-key": "wrong"}) as resp:
            assert resp.status == 401
        async with sandbox_http.get(
            f"{base}/faults", headers={"x-sandbox-admin-key": sandbox_info.admin_key}
        ) as resp:
            assert resp.status == 200


def test_a_verified_token_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge.sandbox import identity
    from bridge.sandbox.identity import ClientApp, TokenRejected

    authority = TokenAuthority(tenant_id="t", clients=[ClientApp("c", "s")], base_url="https://a")
    token = authority.issue("c", "https://r", lifetime=600)
    assert authority.verify(token, "https://r").client_id == "c"
    assert authority.verify(token, "https://r/").client_id == "c"  # served from the cache
    later = time.time() + 601
    monkeypatch.setattr(identity.time, "time", lambda: later)
    with pytest.raises(TokenRejected):
        authority.verify(token, "https://r")
    with pytest.raises(TokenRejected):
        authority.verify(token, "https://other")
