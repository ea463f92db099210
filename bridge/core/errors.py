"""The one error hierarchy of dualwrite.

    DualWriteError
    ├── ConfigError             bad settings or mapping files (names file and field)
    ├── PayloadError            an inbound notification we cannot accept (-> 4xx)
    │   └── AuthError           inbound call not authenticated (-> 401)
    └── SyncError               applying a change to the other system failed
        ├── RetryableError      network, timeout, 429, 5xx: try again (honour retry_after)
        ├── RejectedError       the target refused the data (validation, missing reference): never retried
        └── ConflictError       both sides changed the record since the last sync (policy decides)

Callers catch by branch: the engine retries RetryableError, compensates RejectedError and resolves
ConflictError by policy. A change with nothing to do (echo, duplicate, stale, unmapped) is no error:
the applier returns it as skipped, with the reason.
"""

from __future__ import annotations


class DualWriteError(Exception):
    """Base of every error dualwrite raises on purpose."""


class ConfigError(DualWriteError):
    def __init__(self, message: str, *, file: str | None = None, field: str | None = None) -> None:
        where = ":".join(p for p in (file, field) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.file = file
        self.field = field


class PayloadError(DualWriteError):
    status = 400


class AuthError(PayloadError):
    status = 401


class SyncError(DualWriteError):
    """Applying a change failed. ``system`` is the system that answered, ``status`` its HTTP status."""

    def __init__(
        self, message: str, *, system: str | None = None, status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.system = system
        self.status = status
        self.code = code


class RetryableError(SyncError):
    def __init__(
        self,
        message: str,
        *,
        system: str | None = None,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, system=system, status=status, code=code)
        self.retry_after = retry_after


class RejectedError(SyncError):
    pass


class ConflictError(SyncError):
    pass
