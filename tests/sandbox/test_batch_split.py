"""The emulators' ``$batch`` splitter against the delimiter grammar written as a regular expression
(what they used before they searched with plain strings): the same parts, or the same refusal."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.sandbox.odata.batch import BatchSyntaxError, _split

BOUNDARY = "cs_1"


def _grammar(text: str, boundary: str) -> list[str] | None:
    delimiter = re.compile(r"(?:^|\r?\n)--" + re.escape(boundary) + r"(--)?[ \t]*(?:\r?\n|$)")
    parts: list[str] = []
    start: int | None = None
    for m in delimiter.finditer(text):
        if start is not None:
            parts.append(text[start : m.start()])
        if m.group(1):
            return parts
        start = m.end()
    return None  # no closing delimiter


def _split_or_none(text: str) -> list[str] | None:
    try:
        return _split(text, BOUNDARY)
    except BatchSyntaxError:
        return None


_FRAGMENTS = st.sampled_from([f"--{BOUNDARY}", "--", "-", BOUNDARY, " ", "\t", "\r", "\n", "\r\n", "x"])


@settings(max_examples=3000, deadline=None)
@given(st.lists(_FRAGMENTS, max_size=24).map("".join))
def test_split_follows_the_delimiter_grammar(text: str) -> None:
    assert _split_or_none(text) == _grammar(text, BOUNDARY)


def test_a_batch_splits_into_its_parts_and_stops_at_the_closing_delimiter() -> None:
    text = f"--{BOUNDARY}\r\nA\r\n--{BOUNDARY}-x\r\nB\r\n--{BOUNDARY} \r\nC\r\n--{BOUNDARY}--\r\nafter"
    assert _split(text, BOUNDARY) == [f"A\r\n--{BOUNDARY}-x\r\nB", "C"] == _grammar(text, BOUNDARY)


def test_a_batch_without_its_closing_delimiter_is_refused() -> None:
    with pytest.raises(BatchSyntaxError, match="no closing delimiter"):
        _split(f"--{BOUNDARY}\r\nA\r\n--{BOUNDARY}\r\n", BOUNDARY)
