"""The frames between the serve process and its apply processes: every answer the engine can get
from an in-process apply comes back as the same class with the same fields."""

from __future__ import annotations

import json

import pytest

from bridge.core.errors import ConflictError, RejectedError, RetryableError, SyncError
from bridge.core.events import ChangeEvent, Operation, System
from bridge.engine import applywire
from bridge.engine.apply import Applied, Result
from bridge.engine.applywire import ApplyProcessError


def _unframe(data: bytes) -> dict[str, object]:
    length = applywire.frame_length(data[: applywire.LENGTH.size])
    body = data[applywire.LENGTH.size :]
    assert len(body) == length
    return applywire.parse(body)


def test_an_apply_frame_carries_the_event_unchanged() -> None:
    event = ChangeEvent(
        event_id="cds:1",
        source=System.CDS,
        entity="ship_via",
        company="USMF",
        key="Air",
        operation=Operation.UPDATE,
        image={"msdyn_description": 'quote " and \\ backslash, ünïcode'},
    )
    message = _unframe(applywire.apply_frame(7, event))
    assert message["t"] == "apply" and message["id"] == 7
    assert ChangeEvent.model_validate(message["event"]) == event


@pytest.mark.parametrize(
    "error",
    [
        RetryableError("busy", system="scm", status=429, code="throttled", retry_after=2.5),
        RejectedError("bad value", system="cds", status=400, code="invalid"),
        ConflictError("both changed", system="scm", status=412, code="conflict"),
        SyncError("odd", system="cds", status=418),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_come_back_as_the_same_class_with_the_same_fields(error: SyncError) -> None:
    message = _unframe(applywire.frame(applywire.failed(3, error)))
    back = applywire.error_from_wire(message["error"])  # type: ignore[arg-type]
    assert type(back) is type(error)
    assert isinstance(back, SyncError)
    assert (back.message, back.system, back.status, back.code) == (
        error.message,
        error.system,
        error.status,
        error.code,
    )
    assert getattr(back, "retry_after", None) == getattr(error, "retry_after", None)


def test_a_bug_in_an_apply_process_stays_a_bug_here() -> None:
    back = applywire.error_from_wire(applywire.error_to_wire(KeyError("image")))
    assert not isinstance(back, SyncError)  # the engine logs it and retries the change
    assert "KeyError" in str(back)


def test_an_applied_change_comes_back_without_its_undo() -> None:
    sent = Applied(Result.CONFLICT_LOST, "the target's newer change won", undo=object())  # type: ignore[arg-type]
    back = applywire.applied_from(_unframe(applywire.frame(applywire.done(1, sent))))
    assert back == Applied(Result.CONFLICT_LOST, "the target's newer change won")


@pytest.mark.parametrize(
    "body", [b"not json", b"[1, 2]", b'{"id": 1}', b'{"t": 5}'], ids=["text", "list", "untyped", "bad-type"]
)
def test_a_malformed_frame_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(ApplyProcessError):
        applywire.parse(body)


def test_a_malformed_answer_is_a_protocol_error() -> None:
    with pytest.raises(ApplyProcessError):
        applywire.applied_from({"t": "done", "id": 1, "result": "half-applied"})


def test_an_oversize_frame_is_refused_before_it_is_read() -> None:
    with pytest.raises(ApplyProcessError, match="over the limit"):
        applywire.frame_length(applywire.LENGTH.pack(applywire.MAX_FRAME + 1))


def test_a_protocol_error_is_retried_by_the_engine() -> None:
    assert issubclass(ApplyProcessError, RetryableError)
    assert json.loads(applywire.frame({"t": "x"})[4:]) == {"t": "x"}
