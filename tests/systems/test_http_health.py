"""What the HTTP client tells about its system while it retries: one log line per failed attempt
(system, URL, attempt n of m, the system's own text, the wait) and the health counters behind
``GET /api/systems`` (answers, 429s, Retry-After waited, network errors); the token provider's state."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bridge.core.errors import RetryableError
from bridge.systems.auth import TokenProvider
from bridge.systems.health import SystemHealth
from bridge.systems.http import HttpClient, RetryPolicy
from bridge.systems.transport import MockTransport, Request, Response, TransportError
from tests.systems.test_http import FakeTokens

FAST = RetryPolicy(attempts=3, initial=0.01, maximum=0.02, jitter=0.0)
URL = "https://cds.example/api/data/v9.2/"
# Dataverse's error body shape: {"error": {"code", "message"}} (powerapps-docs
# developer/data-platform/webapi/compose-http-requests-handle-errors.md, "Parse errors from the response").
BUSY = {"error": {"code": "0x80072322", "message": "Number of requests exceeded the limit of 6000"}}


def _client(answers: list[Any]) -> HttpClient:
    def answer(request: Request) -> Response:
        step = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(step, Exception):
            raise step
        return step

    return HttpClient("cds", URL, FakeTokens(), transport=MockTransport(answer), retry=FAST)


async def test_each_retried_attempt_logs_one_line_with_the_systems_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = _client([Response.json(429, BUSY, {"Retry-After": "0"}), Response.json(200, {"ok": 1})])
    with caplog.at_level(logging.INFO, logger="bridge.systems.http"):
        await client.request("GET", "accounts")
    lines = [r.getMessage() for r in caplog.records if r.name == "bridge.systems.http"]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"cds: GET {URL}accounts attempt 1 of 3 failed: cds 429: Number of requests")
    assert "next attempt in" in lines[0]
    assert caplog.records[0].levelno == logging.INFO  # an outage's many requests do not flood WARNING


async def test_the_last_attempt_is_not_logged_here_the_caller_decides(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = _client([TransportError("Cannot connect to host cds.example:443")])
    with caplog.at_level(logging.INFO, logger="bridge.systems.http"), pytest.raises(RetryableError):
        await client.request("GET", "accounts")
    lines = [r.getMessage() for r in caplog.records if r.name == "bridge.systems.http"]
    assert [line.split(" attempt ")[1][:6] for line in lines] == ["1 of 3", "2 of 3"]
    assert all("connection failed: Cannot connect to host cds.example:443" in line for line in lines)


async def test_health_counts_answers_throttling_retry_after_and_network_errors() -> None:
    client = _client(
        [
            Response.json(429, BUSY, {"Retry-After": "0.05"}),
            TransportError("connection reset"),
            Response.json(200, {}),
        ]
    )
    await client.request("GET", "accounts")
    f = client.health.figures()
    assert (f.answers, f.throttled, f.network_errors, f.last_status, f.reachable) == (2, 1, 1, 200, True)
    assert f.retry_after_waited_s >= 0.05  # the wait after the 429 honoured its Retry-After
    assert f.last_error == "cds: connection failed: connection reset"
    assert f.last_answer_at is not None


async def test_a_system_that_stops_answering_is_unreachable() -> None:
    client = _client([Response.json(200, {}), TransportError("refused")])
    await client.request("GET", "a")
    with pytest.raises(RetryableError):
        await client.request("GET", "b")
    f = client.health.figures()
    assert f.reachable is False and f.network_errors == 3 and f.answers == 1


class _App:
    """msal's ConfidentialClientApplication, answering ``results`` in turn."""

    def __init__(self, results: list[dict[str, Any]]) -> None:
        self.results = results

    def acquire_token_for_client(self, scopes: list[str]) -> dict[str, Any]:
        return self.results.pop(0)

    def remove_tokens_for_client(self) -> None:
        pass


async def test_the_token_provider_notes_each_token_and_each_failure() -> None:
    app = _App(
        [
            {"error": "temporarily_unavailable", "error_description": "AADSTS50196: try later"},
            {"access_token": "t", "expires_in": 3600, "token_type": "Bearer"},
        ]
    )
    provider = TokenProvider(
        "https://login.example/tenant", "id", "secret", "s/.default", app_factory=lambda *a, **k: app
    )
    provider.health = health = SystemHealth("cds")
    with pytest.raises(RetryableError):
        await provider.token()
    f = health.figures()
    assert f.token_error is not None and "AADSTS50196" in f.token_error and f.token_acquired_at is None
    await provider.refresh()
    f = health.figures()
    assert f.token_error is None and f.token_acquired_at is not None
    assert f.token_expires_at is not None and f.token_expires_at - f.token_acquired_at == pytest.approx(
        3600, abs=5
    )
