"""The lenient ``$batch`` splitter (``bridge.wire.multipart.split_lenient``: how the bridge reads an
answer) against the grammar written as a regular expression (what it used before it searched with
plain strings): the same parts for any text; and an answer read through the bridge's own reader."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core.errors import RejectedError
from bridge.systems.batch import parse_batch_response
from bridge.wire.multipart import split_lenient as _parts

BOUNDARY = "b_1"


def _grammar(text: str, boundary: str) -> list[str]:
    pieces = re.split(r"(?:^|\r?\n)--" + re.escape(boundary) + r"(?:--)?[ \t]*(?=\r?\n|$)", text)
    return [p.lstrip("\r\n") for p in pieces[1:] if p.strip()]


# Texts made of the pieces that matter: the boundary, dashes, blanks, both line breaks, content.
_FRAGMENTS = st.sampled_from([f"--{BOUNDARY}", "--", "-", BOUNDARY, " ", "\t", "\r", "\n", "\r\n", "x", "{}"])


@settings(max_examples=3000, deadline=None)
@given(st.lists(_FRAGMENTS, max_size=24).map("".join))
def test_parts_follow_the_delimiter_grammar(text: str) -> None:
    assert _parts(text, BOUNDARY) == _grammar(text, BOUNDARY)


def test_a_real_answer_splits_into_its_parts() -> None:
    text = (
        f"--{BOUNDARY}\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
        f"--{BOUNDARY}  \r\nContent-Type: application/http\r\n\r\nHTTP/1.1 201 Created\r\n\r\n{{}}\r\n"
        f"--{BOUNDARY}-x not a delimiter\r\n"
        f"--{BOUNDARY}--\r\n"
    )
    parts = _parts(text, BOUNDARY)
    assert parts == _grammar(text, BOUNDARY)
    assert [p.split("\r\n")[2] for p in parts] == ["HTTP/1.1 204 No Content", "HTTP/1.1 201 Created"]
    assert f"--{BOUNDARY}-x not a delimiter" in parts[1]


def test_an_answer_is_read_as_far_as_it_goes_and_garbage_is_rejected() -> None:
    """No closing delimiter (and header lines that are no headers) still reads; a part without a
    status line, or an answer that is no multipart at all, is a RejectedError."""
    ctype = f"multipart/mixed; boundary={BOUNDARY}"
    text = (
        f"--{BOUNDARY}\r\nContent-Type: application/http\r\nnot a header\r\n\r\n"
        'HTTP/1.1 200 OK\r\nETag: W/"1"\r\n\r\n{"a": 1}\r\n'
    )
    [result] = parse_batch_response(ctype, text)
    assert (result.status, result.body, result.headers.get("etag")) == (200, {"a": 1}, 'W/"1"')
    with pytest.raises(RejectedError, match="status line"):
        parse_batch_response(ctype, f"--{BOUNDARY}\r\nContent-Type: application/http\r\n\r\nnonsense\r\n")
    with pytest.raises(RejectedError, match="multipart/mixed"):
        parse_batch_response("application/json", "{}")
