"""The bridge's ``$batch`` answer splitting against the grammar written as regular expressions (what
it used before it searched with plain strings): the same parts and blank lines for any text."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.systems.batch import _blank_line, _parts

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


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(["\r", "\n", "\r\n", "a", ":", " "]), max_size=16).map("".join))
def test_the_blank_line_is_the_leftmost_empty_line_break(block: str) -> None:
    match = re.search(r"\r?\n\r?\n", block)
    assert _blank_line(block) == (None if match is None else match.span())


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
