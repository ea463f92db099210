"""OData resource paths: ``Set``, ``Set(<guid>)``, ``Set(k1='a',k2=1)`` and key literals.

Key values come URL-encoded in the raw path; string literals use single quotes with ``''`` for one
quote inside. Anything else is a ``KeySyntaxError`` the dialect answers with a 400.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

_PATH = re.compile(r"^(?P<set>[A-Za-z_][A-Za-z0-9_.]*)(?:\((?P<key>.*)\))?$", re.S)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class KeySyntaxError(ValueError):
    """A resource path or key segment that does not parse."""


@dataclass(frozen=True, slots=True)
class ResourcePath:
    entity_set: str
    key: Key | None  # None: the collection


@dataclass(frozen=True, slots=True)
class Key:
    """``single`` for ``(value)``; ``named`` for ``(name=value,...)``."""

    single: Any = None
    named: tuple[tuple[str, Any], ...] = ()

    @property
    def is_single(self) -> bool:
        return not self.named

    def as_dict(self) -> dict[str, Any]:
        return dict(self.named)


def parse_path(raw: str) -> ResourcePath:
    """Parse ``Set`` or ``Set(<key>)`` from a raw (still URL-encoded) path segment."""
    m = _PATH.match(raw)
    if m is None:
        raise KeySyntaxError(f"Bad Request - Error in query syntax: '{unquote(raw)}'.")
    key_text = m.group("key")
    if key_text is None:
        return ResourcePath(m.group("set"), None)
    return ResourcePath(m.group("set"), parse_key(unquote(key_text)))


def parse_key(text: str) -> Key:
    """Parse the (decoded) text between the parentheses of a key segment."""
    pos = 0
    named: list[tuple[str, Any]] = []
    single: Any = None
    seen_single = False
    while True:
        name_m = _NAME.match(text, pos)
        if name_m and text.startswith("=", name_m.end()):
            name = name_m.group(0)
            value, pos = _literal(text, name_m.end() + 1)
            if any(n == name for n, _ in named):
                raise KeySyntaxError(f"The key property '{name}' appears more than once.")
            named.append((name, value))
        else:
            if named or seen_single:
                raise KeySyntaxError(f"Bad key segment '({text})'.")
            single, pos = _literal(text, pos)
            seen_single = True
        if pos == len(text):
            break
        if text[pos] != "," or seen_single:
            raise KeySyntaxError(f"Bad key segment '({text})'.")
        pos += 1
    return Key(single=single, named=tuple(named))


def _literal(text: str, pos: int) -> tuple[Any, int]:
    if pos >= len(text):
        raise KeySyntaxError(f"Bad key segment '({text})': a value is missing.")
    if text[pos] == "'":
        out: list[str] = []
        i = pos + 1
        while i < len(text):
            if text[i] == "'":
                if text.startswith("''", i):
                    out.append("'")
                    i += 2
                    continue
                return "".join(out), i + 1
            out.append(text[i])
            i += 1
        raise KeySyntaxError(f"Bad key segment '({text})': unterminated string literal.")
    guid = _GUID.match(text, pos)
    if guid:
        return str(uuid.UUID(guid.group(0))), guid.end()
    num = _NUMBER.match(text, pos)
    if num:
        literal = num.group(0)
        return (float(literal) if "." in literal else int(literal)), num.end()
    for word, value in (("true", True), ("false", False), ("null", None)):
        if text.startswith(word, pos):
            return value, pos + len(word)
    raise KeySyntaxError(f"Bad key segment '({text})': unrecognised literal at position {pos}.")


def format_key(values: dict[str, Any]) -> str:
    """``k1='a',k2=1`` with quotes doubled (F&O record ids, OData-EntityId of composite keys)."""
    parts = []
    for name, value in values.items():
        if isinstance(value, str):
            parts.append(f"{name}='" + value.replace("'", "''") + "'")
        elif isinstance(value, bool):
            parts.append(f"{name}={'true' if value else 'false'}")
        else:
            parts.append(f"{name}={value}")
    return ",".join(parts)
