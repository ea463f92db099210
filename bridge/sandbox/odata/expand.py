"""``$expand`` of single-valued navigation properties, one level, with ``$select`` inside.

``nav1($select=a,b),nav2`` → two ``ExpandItem``s. Both services accept only what they can answer:
a nested ``$expand`` or an option other than ``$select`` inside the parentheses is a clear 400 (the
real Dataverse allows ``$filter``/``$orderby``/``$top`` only on collection-valued properties, which
the sandbox does not model; F&O supports "only first-level expansion", odata.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bridge.sandbox.odata.query import QueryError

_ITEM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$", re.S)


@dataclass(frozen=True, slots=True)
class ExpandItem:
    nav: str
    select: tuple[str, ...] | None  # None: every column of the related row


def split_top_level(text: str, sep: str) -> list[str]:
    parts, depth, start, quoted = [], 0, 0, False
    for i, ch in enumerate(text):
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
            if depth < 0:
                raise QueryError(f"Syntax error in $expand '{text}': unbalanced parentheses.")
        elif not quoted and depth == 0 and ch == sep:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0 or quoted:
        raise QueryError(f"Syntax error in $expand '{text}': unbalanced parentheses or quotes.")
    parts.append(text[start:])
    return parts


def expand_options(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """``a($select=x;$filter=y),b`` → [("a", [("$select", "x"), ("$filter", "y")]), ("b", [])]."""
    out: list[tuple[str, list[tuple[str, str]]]] = []
    for raw in split_top_level(text, ","):
        if not raw.strip():
            raise QueryError(f"Syntax error in $expand '{text}': an empty item.")
        if raw.strip().endswith("/$ref"):
            raise QueryError("$expand with /$ref is not emulated by the sandbox.")
        m = _ITEM.match(raw)
        if m is None:
            raise QueryError(f"Syntax error in $expand '{text}' near '{raw.strip()}'.")
        inner = m.group(2)
        options = []
        for option in split_top_level(inner, ";") if inner and inner.strip() else []:
            name, _, value = option.strip().partition("=")
            options.append((name.strip(), value.strip()))
        out.append((m.group(1), options))
    return out


def parse_expand(text: str) -> tuple[ExpandItem, ...]:
    items: list[ExpandItem] = []
    for nav, options in expand_options(text):
        select: tuple[str, ...] | None = None
        for name, value in options:
            if name == "$select" and value:
                select = tuple(s.strip() for s in value.split(",") if s.strip())
            elif name == "$expand":
                raise QueryError("A nested $expand is not emulated by the sandbox: expand one level only.")
            else:
                raise QueryError(
                    f"The option '{name}' inside $expand is not supported on the single-valued "
                    f"navigation property '{nav}': only $select is."
                )
        if any(i.nav == nav for i in items):
            raise QueryError(f"The navigation property '{nav}' is expanded more than once.")
        items.append(ExpandItem(nav, select))
    return tuple(items)


def context_fragment(select: tuple[str, ...] | None, expand: tuple[ExpandItem, ...]) -> str:
    """The ``(a,b,nav(c))`` part of ``@odata.context`` (join-tables.md shows this shape)."""
    parts = list(select or ())
    parts += [f"{e.nav}({','.join(e.select or ())})" for e in expand]
    return f"({','.join(parts)})" if parts else ""
