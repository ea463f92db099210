"""What a non-2xx answer of Dataverse or F&O means, as the one error hierarchy (pure: no I/O).

- 429 and 503 -> ``RetryableError(retry_after=<Retry-After>)`` (seconds or an HTTP date)
- other 5xx -> ``RetryableError``; except F&O's known duplicate-key 500 (a write that can never
  succeed) -> ``RejectedError``
- 400/403/404/409/412/422 and other 4xx -> ``RejectedError`` carrying the system's own message
  (Dataverse ``error.message``; F&O ``error.innererror.message``, falling back to ``error.message``)

(401 is the HTTP client's business first: it retries once with a fresh token, then classifies.)
"""

from __future__ import annotations

import re
import time
from email.utils import parsedate_to_datetime
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from bridge.core.errors import RejectedError, RetryableError, SyncError

# Response headers, looked up by case-insensitive name (aiohttp's own type).
Headers = CIMultiDictProxy[str] | CIMultiDict[str]

# F&O answers a duplicate key with 500 (third-party report; see protocols.md): retrying cannot help.
_DUPLICATE_500 = re.compile(r"already exists|duplicate", re.IGNORECASE)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def error_message(body: Any, text: str = "") -> tuple[str, str | None]:
    """The system's own message and code from an OData error body (both systems' shapes)."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        inner = err.get("innererror")
        code = err.get("code") or None
        if isinstance(inner, dict) and isinstance(inner.get("message"), str) and inner["message"]:
            return inner["message"], code  # F&O: the useful text is here
        if isinstance(err.get("message"), str) and err["message"]:
            return err["message"], code
    return (text.strip()[:500] or "no error message"), None


def is_duplicate_500(system: str, status: int, message: str) -> bool:
    """F&O's answer to a duplicate key: a 500 that names it."""
    return status == 500 and system == "scm" and bool(_DUPLICATE_500.search(message))


def classify(system: str, status: int, headers: Headers, body: Any, text: str = "") -> SyncError:
    """Turn a non-2xx answer into the error hierarchy (pure)."""
    message, code = error_message(body, text)
    message = f"{system} {status}: {message}"
    if status in (429, 503):
        retry_after = parse_retry_after(headers.get("Retry-After"))
        return RetryableError(message, system=system, status=status, code=code, retry_after=retry_after)
    if is_duplicate_500(system, status, message):
        return RejectedError(message, system=system, status=status, code=code or "duplicate")
    if status >= 500:
        return RetryableError(message, system=system, status=status, code=code)
    return RejectedError(message, system=system, status=status, code=code)


def timed_out(system: str, budget: float) -> RetryableError:
    return RetryableError(f"{system}: timed out after {budget:.1f}s", system=system)


def connection_failed(system: str, why: object) -> RetryableError:
    return RetryableError(f"{system}: connection failed: {why}", system=system)


def deadline_passed(system: str) -> RetryableError:
    return RetryableError(f"{system}: deadline passed before the request", system=system)
