"""System clients: error classification (pure), ``$batch`` bodies, tokens, and OData calls against
the sandbox (retries and transports: test_http.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import jwt
import pytest
from multidict import CIMultiDict

from bridge.core.errors import ConfigError, RejectedError, RetryableError
from bridge.systems.auth import TokenProvider, decode_claims
from bridge.systems.batch import BatchOperation, build_changeset, parse_batch_response, raise_for_batch
from bridge.systems.dataverse import DataverseClient
from bridge.systems.errors import classify, parse_retry_after
from bridge.systems.fno import FnoClient
from bridge.systems.http import RetryPolicy
from bridge.systems.odata import key_segment, literal
from tests.systems.helpers import tokens_for

FAST = RetryPolicy(attempts=4, initial=0.01, maximum=0.05, jitter=0.1)


# ---------------------------------------------------------------- classification (pure)
def test_429_and_503_are_retryable_with_retry_after_in_seconds_or_as_a_date() -> None:
    err = classify("cds", 429, CIMultiDict({"retry-after": "7"}), None)
    assert isinstance(err, RetryableError) and err.retry_after == 7.0 and err.status == 429
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    err = classify("scm", 503, CIMultiDict({"Retry-After": when}), None)
    assert isinstance(err, RetryableError) and err.retry_after is not None and 25 < err.retry_after <= 30
    assert parse_retry_after("soon") is None


def test_5xx_is_retryable_but_the_fno_duplicate_500_is_rejected() -> None:
    assert isinstance(classify("cds", 500, CIMultiDict(), None), RetryableError)
    assert isinstance(classify("scm", 504, CIMultiDict(), None), RetryableError)
    dup = {
        "error": {
            "code": "",
            "message": "An error has occurred.",
            "innererror": {"message": "Cannot create a record in Warehouses. The record already exists."},
        }
    }
    err = classify("scm", 500, CIMultiDict(), dup)
    assert isinstance(err, RejectedError) and "already exists" in err.message


@pytest.mark.parametrize("status", [400, 403, 404, 409, 412, 422])
def test_client_errors_are_rejected_with_the_systems_own_message(status: int) -> None:
    cds = classify(
        "cds", status, CIMultiDict(), {"error": {"code": "0x80040237", "message": "Duplicate key"}}
    )
    assert isinstance(cds, RejectedError) and cds.status == status and cds.code == "0x80040237"
    assert "Duplicate key" in cds.message
    scm_body = {"error": {"message": "An error has occurred.", "innererror": {"message": "Field too long"}}}
    scm = classify("scm", status, CIMultiDict(), scm_body)
    assert isinstance(scm, RejectedError) and "Field too long" in scm.message


def test_key_segments_quote_strings_and_leave_guids_of_lookup_keys_bare() -> None:
    guid = "6F1C0D7E-3F55-4C1A-9A52-2F0F1A7D0A01"
    seg = key_segment({"_msdyn_company_value": guid, "msdyn_name": "O'Brien & Co/1"})
    assert (
        seg
        == "(_msdyn_company_value=6f1c0d7e-3f55-4c1a-9a52-2f0f1a7d0a01,msdyn_name='O''Brien%20%26%20Co%2F1')"
    )
    assert key_segment({"dataAreaId": "usmf", "Line": 3}) == "(dataAreaId='usmf',Line=3)"
    assert literal(True) == "true" and literal(None) == "null"


def test_changeset_is_read_by_the_sandbox_batch_parser() -> None:
    from bridge.wire.batch import ChangeSet, parse_batch

    ops = [
        BatchOperation("POST", "msdyn_shipvias", {"msdyn_name": "A"}),
        BatchOperation(
            "PATCH", "msdyn_shipvias(11111111-1111-4111-8111-111111111111)", {"x": 1}, {"If-Match": "*"}
        ),
        BatchOperation("DELETE", "/msdyn_shipvias(22222222-2222-4222-8222-222222222222)"),
    ]
    content_type, body = build_changeset("https://h/api/data/v9.2/", ops)
    [changeset] = parse_batch(body, content_type)
    assert isinstance(changeset, ChangeSet)
    assert [(r.method, r.url.rsplit("/", 1)[-1]) for r in changeset.requests] == [
        ("POST", "msdyn_shipvias"),
        ("PATCH", "msdyn_shipvias(11111111-1111-4111-8111-111111111111)"),
        ("DELETE", "msdyn_shipvias(22222222-2222-4222-8222-222222222222)"),
    ]
    assert json.loads(changeset.requests[0].body) == {"msdyn_name": "A"}
    assert changeset.requests[1].headers["if-match"] == "*"


def test_batch_answers_are_parsed_and_the_first_failure_raised() -> None:
    from bridge.wire.batch import BatchResponse, write_batch

    ok = [BatchResponse(204, {"OData-EntityId": "https://h/x(1)"}), BatchResponse(200, {}, b'{"a": 1}')]
    content_type, body = write_batch([ok])
    results = parse_batch_response(content_type, body.decode())
    assert [(r.status, r.body) for r in results] == [(204, None), (200, {"a": 1})]
    assert results[0].headers["odata-entityid"] == "https://h/x(1)"
    raise_for_batch("cds", results, 2)
    failed = BatchResponse(400, {"Content-Type": "application/json"}, b'{"error": {"message": "too long"}}')
    content_type, body = write_batch([failed])
    with pytest.raises(RejectedError, match="too long"):
        raise_for_batch("cds", parse_batch_response(content_type, body.decode()), 2)
    with pytest.raises(RejectedError, match="1 of 2"):
        raise_for_batch("cds", results[:1], 2)


# ---------------------------------------------------------------- tokens
def test_claims_are_read_from_any_jwt_unverified_and_garbage_is_a_config_error() -> None:
    """The bridge reads only its own token's claims (oid, expiry): no key, no expiry check."""
    expired = jwt.encode({"oid": "abc", "exp": 1}, "k" * 32, algorithm="HS256")
    assert decode_claims(expired) == {"oid": "abc", "exp": 1}
    with pytest.raises(ConfigError, match="not a JWT"):
        decode_claims("not-a-token")


def test_http_authority_is_a_config_error() -> None:
    provider = TokenProvider("http://127.0.0.1:1/tenant", "id", "secret", "api://x/.default")
    with pytest.raises(ConfigError, match="https"):
        provider._acquire(False)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"error": "invalid_client", "error_description": "bad secret"}, ConfigError),
        ({"error": "temporarily_unavailable"}, RetryableError),
    ],
)
async def test_token_error_answers_are_classified(answer: dict[str, str], error: type[Exception]) -> None:
    class App:
        def acquire_token_for_client(self, scopes: list[str]) -> dict[str, str]:
            return answer

    provider = TokenProvider("https://x/t", "id", "s", "api://x/.default", app_factory=lambda *a, **k: App())
    with pytest.raises(error):
        await provider.token()


async def test_msal_service_error_is_retryable_after_msals_replay_window() -> None:
    import msal

    class App:
        def acquire_token_for_client(self, scopes: list[str]) -> dict[str, str]:
            raise msal.exceptions.MsalServiceError(
                "HTTP Error: 500", error="http_500", error_description="boom"
            )

    provider = TokenProvider("https://x/t", "id", "s", "api://x/.default", app_factory=lambda *a, **k: App())
    with pytest.raises(RetryableError) as info:
        await provider.token()
    assert info.value.retry_after is not None and info.value.retry_after >= 5


class _CountingApp:
    """msal's side: a new token each time the authority is asked, ``expires_in`` as given."""

    def __init__(self, expires_in: float | None) -> None:
        self.expires_in = expires_in
        self.calls = 0

    def acquire_token_for_client(self, scopes: list[str]) -> dict[str, Any]:
        self.calls += 1
        answer: dict[str, Any] = {"access_token": f"token-{self.calls}"}
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        return answer

    def remove_tokens_for_client(self) -> None:
        pass


async def test_a_token_is_kept_for_half_its_life_without_asking_msal() -> None:
    app = _CountingApp(expires_in=0.4)
    provider = TokenProvider("https://x/t", "id", "s", "api://x/.default", app_factory=lambda *a, **k: app)
    assert [await provider.token() for _ in range(5)] == ["token-1"] * 5
    assert app.calls == 1  # one trip to msal (and its thread), then kept
    await asyncio.sleep(0.25)  # past half its life: msal decides again
    assert await provider.token() == "token-2" and app.calls == 2


async def test_refresh_bypasses_the_kept_token_and_keeps_the_new_one() -> None:
    app = _CountingApp(expires_in=3600)
    provider = TokenProvider("https://x/t", "id", "s", "api://x/.default", app_factory=lambda *a, **k: app)
    assert await provider.token() == "token-1"
    assert await provider.refresh() == "token-2"  # after a 401
    assert await provider.token() == "token-2" and app.calls == 2


async def test_a_token_without_a_lifetime_is_not_kept() -> None:
    app = _CountingApp(expires_in=None)
    provider = TokenProvider("https://x/t", "id", "s", "api://x/.default", app_factory=lambda *a, **k: app)
    assert [await provider.token() for _ in range(3)] == ["token-1", "token-2", "token-3"]


# ---------------------------------------------------------------- against the sandbox
async def test_tokens_and_own_ids_from_the_sandbox_authority(sandbox_info: Any) -> None:
    provider = tokens_for(sandbox_info, sandbox_info.cds_scope)
    token = await provider.token()
    assert await provider.token() == token  # msal's cache
    assert decode_claims(token)["appid"] == sandbox_info.client_id
    assert await provider.own_object_id() == sandbox_info.bridge_object_id
    bad = TokenProvider(
        sandbox_info.authority,
        sandbox_info.client_id,
        "wrong",
        sandbox_info.cds_scope,
        ca_file=sandbox_info.ca_file,
    )
    with pytest.raises(ConfigError):
        await bad.token()


@pytest.fixture
async def cds(sandbox_info: Any) -> AsyncIterator[DataverseClient]:
    tokens = tokens_for(sandbox_info, sandbox_info.cds_scope)
    async with DataverseClient(
        sandbox_info.cds_url, tokens, ca_file=sandbox_info.ca_file, retry=FAST
    ) as client:
        yield client


async def test_a_cold_company_cache_is_loaded_once_for_concurrent_callers(cds: DataverseClient) -> None:
    """Many changes at once after a start (a backlog, a burst) share one reload of the company table."""
    before = cds.http.requests_sent
    found = await asyncio.gather(*(cds.company_id(code) for code in ["USMF", "usmf", "DEMF", "NOPE"] * 10))
    assert cds.http.requests_sent - before == 1
    assert found[0] == found[1] and found[0] is not None and found[3] is None
    # A miss reloads (a company may have been added), again once for everyone who missed together.
    before = cds.http.requests_sent
    assert await asyncio.gather(*(cds.company_id("NOPE") for _ in range(10))) == [None] * 10
    assert cds.http.requests_sent - before == 1


async def test_dataverse_crud_by_id_and_alternate_key(cds: DataverseClient, sandbox_info: Any) -> None:
    assert (await cds.who_am_i()).user_id == sandbox_info.bridge_user_id
    usmf = await cds.company_id("usmf")
    assert usmf is not None and await cds.code_for_cds_company(usmf) == "USMF"
    payload = {
        "msdyn_name": "AIR O'X",
        "msdyn_description": "Air",
        "msdyn_company@odata.bind": f"/cdm_companies({usmf})",
    }
    new_id = await cds.create("msdyn_shipvias", payload, primary_id="msdyn_shipviaid")
    row = await cds.get("msdyn_shipvias", new_id)
    assert row is not None and row["_msdyn_company_value"] == usmf and row["msdyn_description"] == "Air"
    await cds.update("msdyn_shipvias", new_id, {"msdyn_description": "Air freight"})
    by_key = await cds.get_by_key("msdyn_shipvias", {"_msdyn_company_value": usmf, "msdyn_name": "AIR O'X"})
    assert by_key is not None and by_key["msdyn_description"] == "Air freight"
    assert (
        await cds.resolve_id("msdyn_shipvias", "msdyn_shipviaid", "msdyn_name", "AIR O'X", "USMF") == new_id
    )
    assert await cds.resolve_key("msdyn_shipvias", new_id, "msdyn_name") == "AIR O'X"
    assert await cds.delete("msdyn_shipvias", new_id) is True
    assert await cds.get("msdyn_shipvias", new_id) is None
    assert await cds.delete("msdyn_shipvias", new_id) is False
    cds.forget("msdyn_shipvias", new_id)
    assert await cds.resolve_key("msdyn_shipvias", new_id, "msdyn_name") is None


async def test_dataverse_rejection_carries_its_message(cds: DataverseClient) -> None:
    usmf = await cds.company_id("USMF")
    with pytest.raises(RejectedError) as info:
        await cds.create(
            "msdyn_shipvias", {"msdyn_name": "x" * 101, "msdyn_company@odata.bind": f"/cdm_companies({usmf})"}
        )
    assert info.value.status == 400 and info.value.system == "cds" and info.value.message
    with pytest.raises(RejectedError) as missing:
        await cds.update("msdyn_shipvias", "11111111-1111-4111-8111-111111111111", {"msdyn_description": "x"})
    assert missing.value.status == 404


async def test_dataverse_changeset_applies_all_or_nothing(cds: DataverseClient) -> None:
    usmf = await cds.company_id("USMF")
    company = {"msdyn_company@odata.bind": f"/cdm_companies({usmf})"}
    ok = [BatchOperation("POST", "msdyn_shipvias", {"msdyn_name": n, **company}) for n in ("B1", "B2")]
    results = await cds.batch(ok)
    assert [r.status for r in results] == [204, 204] or all(200 <= r.status < 300 for r in results)
    assert len(await cds.query("msdyn_shipvias", filter="startswith(msdyn_name,'B')")) == 2
    bad = [
        BatchOperation("POST", "msdyn_shipvias", {"msdyn_name": "B3", **company}),
        BatchOperation("POST", "msdyn_shipvias", {"msdyn_name": "x" * 101, **company}),
    ]
    with pytest.raises(RejectedError):
        await cds.batch(bad)
    assert await cds.get_by_key("msdyn_shipvias", {"_msdyn_company_value": usmf, "msdyn_name": "B3"}) is None


@pytest.fixture
async def fno(sandbox_info: Any) -> AsyncIterator[FnoClient]:
    tokens = tokens_for(sandbox_info, sandbox_info.scm_scope)
    async with FnoClient(sandbox_info.scm_url, tokens, ca_file=sandbox_info.ca_file, retry=FAST) as client:
        yield client


async def test_fno_crud_by_composite_key_across_companies(fno: FnoClient) -> None:
    keys = {"dataAreaId": "usmf", "ModeCode": "AIR O'X"}
    created = await fno.create("DeliveryModesV2", {**keys, "ModeDescription": "Air"})
    assert created.get("ModeCode", "AIR O'X") == "AIR O'X"
    row = await fno.get("DeliveryModesV2", keys)
    assert row is not None and row["ModeDescription"] == "Air"
    await fno.update("DeliveryModesV2", keys, {"ModeDescription": "Air freight"})
    rows = await fno.query(
        "DeliveryModesV2", filter="ModeCode eq 'AIR O''X'", select=["ModeCode", "ModeDescription"]
    )
    assert [r["ModeDescription"] for r in rows] == ["Air freight"]
    assert await fno.delete("DeliveryModesV2", keys) is True
    assert await fno.get("DeliveryModesV2", keys) is None
    assert await fno.delete("DeliveryModesV2", keys) is False


async def test_fno_rejections_carry_the_inner_message(fno: FnoClient) -> None:
    with pytest.raises(RejectedError) as long_key:
        await fno.create("DeliveryModesV2", {"dataAreaId": "usmf", "ModeCode": "X" * 11})
    assert long_key.value.system == "scm" and "An error has occurred" not in long_key.value.message
    await fno.create("DeliveryModesV2", {"dataAreaId": "usmf", "ModeCode": "DUP"})
    with pytest.raises(RejectedError):  # a duplicate never succeeds, whatever status F&O uses
        await fno.create("DeliveryModesV2", {"dataAreaId": "usmf", "ModeCode": "DUP"})
    with pytest.raises(RejectedError) as missing:
        await fno.update(
            "DeliveryModesV2", {"dataAreaId": "usmf", "ModeCode": "NONE"}, {"ModeDescription": "x"}
        )
    assert missing.value.status == 404
