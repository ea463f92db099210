"""Property-based fuzzing of both webhook endpoints: malformed, deeply nested, wrongly typed and
wrongly encoded bodies and headers always get a 4xx, never a 5xx, nothing is enqueued (after any
call), and the bridge keeps serving (a real change still syncs afterwards). The whole request, over
raw sockets, compression bombs included, is fuzzed in test_attack_requests.py."""

from __future__ import annotations

import copy
import json
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.listeners.payloads import cds_context, data_event
from tests.reliability.conftest import Rig, forms
from tests.reliability.helpers import converge

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)
# Never a string, None or [] (an unknown message or entity name is acknowledged and ignored by design,
# and a body without InputParameters is the documented over-256 KB variant).
WRONG: st.SearchStrategy[Any] = st.sampled_from([5, {}, 1.5, True, [{"key": "Target", "value": 5}]])
# Fields every notification needs, each replaced by a value of the wrong type.
BROKEN_FIELDS = {
    "cds": ["MessageName", "InputParameters", "PrimaryEntityName", "Mode"],
    "scm": ["MessageName", "InputParameters", "PrimaryEntityName"],
}


def _valid(endpoint: str) -> dict[str, Any]:
    if endpoint == "cds":
        return cds_context("Update", logical="msdyn_shipvia")
    return data_event("Update", entity_name="mserp_deliverymodev2")


@st.composite
def bodies(draw: st.DrawFn, endpoint: str) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "wrong-type", "nested", "encoding", "array"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return json.dumps(draw(JSON)).encode()
    if kind == "nested":
        depth = draw(st.sampled_from([10, 50, 200]))  # deeper: see test_deep_nesting_and_bad_gzip_...
        return (draw(st.sampled_from(["[", '{"a":'])) * depth).encode()  # unterminated or deep
    body = _valid(endpoint)
    if kind == "encoding":
        return json.dumps(body).encode(draw(st.sampled_from(["utf-16", "utf-32", "cp500"])))
    field = draw(st.sampled_from(BROKEN_FIELDS[endpoint]))
    broken = copy.deepcopy(body)
    broken[field] = draw(WRONG)
    return json.dumps([broken] if kind == "array" and endpoint == "scm" else broken).encode()


HEADERS = st.dictionaries(
    st.sampled_from(["Content-Type", "Content-Language", "x-ms-dynamics-msg-size-exceeded", "traceparent"]),
    st.sampled_from(["application/json; charset=utf-16", "text/plain", "gzip", "true", "garbage", "\u00e9"]),
    max_size=3,
)


async def _post(rig: Rig, endpoint: str, body: bytes, headers: dict[str, str], key: bool = True) -> int:
    settings_ = rig.bridge.settings
    secret = (
        settings_.cds_webhook_key if endpoint == "cds" else settings_.scm_webhook_key
    ).get_secret_value()
    params = {"code": secret} if key else {}
    try:
        async with rig.http.post(
            f"{rig.bridge.url}/webhooks/{endpoint}", data=body, headers=headers, params=params
        ) as resp:
            await resp.read()
            return resp.status
    except aiohttp.ClientError:
        return 0  # the bridge dropped the connection: as bad as a 5xx


@forms(short=40, long=1000)
@pytest.mark.parametrize("endpoint", ["cds", "scm"])
async def test_fuzzed_bodies_and_headers_always_get_a_4xx_and_enqueue_nothing(
    rig: Rig, endpoint: str, size: int
) -> None:
    # Hypothesis draws the inputs (its runner is synchronous); the bridge is then called with each.
    drawn: list[tuple[bytes, dict[str, str], bool]] = []

    @settings(max_examples=size, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body=bodies(endpoint), headers=HEADERS, key=st.booleans())
    def draw(body: bytes, headers: dict[str, str], key: bool) -> None:
        drawn.append((body, headers, key))

    draw()
    seen: list[int] = []
    wrong: list[str] = []
    for body, headers, key in drawn:
        status = await _post(rig, endpoint, body, headers, key)
        seen.append(status)
        depth = await rig.bridge.queue.depth()  # nothing enqueued, checked after every call
        if not 400 <= status < 500 or depth:
            wrong.append(
                f"{status} depth={depth} for {body[:60]!r}... ({len(body)} bytes) {headers} key={key}"
            )
    assert not wrong, "\n".join(wrong)
    assert 401 in seen and 400 in seen
    # Oversize, then the bridge still serves a real change.
    too_big = b'{"a":"' + b"x" * (rig.bridge.settings.listen.max_body_bytes + 10) + b'"}'
    assert await _post(rig, endpoint, too_big, {"Content-Type": "application/json"}) == 413
    assert await rig.person.scm_create("FUZZOK", "still serving") == 201
    assert (await converge(rig.sandbox)).get("FUZZOK") == "still serving"


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, {}, id="nested-100k-deep"),
        pytest.param(b'{"a":' * 5000, {}, id="nested-5k-deep-unterminated"),
        pytest.param(b'{"MessageName": "Update"}', {"Content-Encoding": "gzip"}, id="gzip-header-plain-body"),
    ],
)
@pytest.mark.parametrize("endpoint", ["cds", "scm"])
async def test_deep_nesting_and_bad_gzip_get_a_4xx(
    rig: Rig, endpoint: str, body: bytes, headers: dict[str, str]
) -> None:
    assert 400 <= await _post(rig, endpoint, body, headers) < 500
    assert await rig.bridge.queue.depth() == 0
