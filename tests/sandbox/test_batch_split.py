"""The strict ``$batch`` splitter (``bridge.wire.multipart.split``: how the emulators read a request)
against the delimiter grammar written as a regular expression (what they used before they searched
with plain strings): the same parts, or the same refusal."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.wire.multipart import MultipartError, read_headers, split

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
        return split(text, BOUNDARY)
    except MultipartError:
        return None


_FRAGMENTS = st.sampled_from([f"--{BOUNDARY}", "--", "-", BOUNDARY, " ", "\t", "\r", "\n", "\r\n", "x"])


@settings(max_examples=3000, deadline=None)
@given(st.lists(_FRAGMENTS, max_size=24).map("".join))
def test_split_follows_the_delimiter_grammar(text: str) -> None:
    assert _split_or_none(text) == _grammar(text, BOUNDARY)


def test_a_batch_splits_into_its_parts_and_stops_at_the_closing_delimiter() -> None:
    text = f"--{BOUNDARY}\r\nA\r\n--{BOUNDARY}-x\r\nB\r\n--{BOUNDARY} \r\nC\r\n--{BOUNDARY}--\r\nafter"
    assert split(text, BOUNDARY) == [f"A\r\n--{BOUNDARY}-x\r\nB", "C"] == _grammar(text, BOUNDARY)


def test_a_batch_without_its_closing_delimiter_is_refused() -> None:
    with pytest.raises(MultipartError, match="no closing delimiter"):
        split(f"--{BOUNDARY}\r\nA\r\n--{BOUNDARY}\r\n", BOUNDARY)


# The header block as the emulators read it with a regular expression per line, before
# ``read_headers`` split it at its end with plain string search.
_HEADER_LINE = re.compile(r"^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$")


def _headers_by_grammar(text: str) -> tuple[dict[str, str], str] | None:
    headers: dict[str, str] = {}
    pos = 0
    while True:
        nl = text.find("\n", pos)
        line = text[pos : nl if nl >= 0 else len(text)].rstrip("\r")
        if not line:
            return headers, (text[nl + 1 :] if nl >= 0 else "")
        match = _HEADER_LINE.match(line)
        if match is None:
            return None  # refused
        headers[match.group(1).lower()] = match.group(2)
        if nl < 0:
            return headers, ""
        pos = nl + 1


def _read_or_none(text: str) -> tuple[dict[str, str], str] | None:
    try:
        return read_headers(text)
    except MultipartError:
        return None


_HEADER_FRAGMENTS = st.sampled_from(["\r", "\n", "\r\n", "a", "B", ":", " ", "\t", "-", "é"])


@settings(max_examples=3000, deadline=None)
@given(st.lists(_HEADER_FRAGMENTS, max_size=20).map("".join))
def test_header_blocks_follow_the_line_grammar(text: str) -> None:
    assert _read_or_none(text) == _headers_by_grammar(text)
