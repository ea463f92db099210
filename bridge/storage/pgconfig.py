"""What the PostgreSQL backends take from the settings, importable without the ``postgres`` extra.

The factories import ``bridge.queue.postgres`` and ``bridge.state.postgres`` (and with them psycopg)
only when the settings choose ``backend = "postgres"``, so ``pip install dualwrite`` without the extra
runs the SQLite and Service Bus backends; choosing postgres without it is one clear ``ConfigError``.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.core.errors import ConfigError

POSTGRES_EXTRA_MODULES = (
    "psycopg",
    "psycopg_pool",
)  # pyproject.toml's postgres extra (a test keeps them equal)


@dataclass(frozen=True)
class PgOptions:
    """How a pool connects (``[database]`` in the settings, bridge.settings.DatabaseSettings)."""

    pool_min: int = 1
    pool_max: int = 5
    synchronous_commit: str = "on"  # "off": commits do not wait for the server's disk
    connect_timeout_s: float = 10.0


DEFAULT_OPTIONS = PgOptions()


def missing_extra(exc: ModuleNotFoundError, field: str) -> ConfigError:
    """The error for ``backend = "postgres"`` where the extra is not installed."""
    return ConfigError(
        f"the postgres backend needs the postgres extra: pip install 'dualwrite[postgres]' "
        f"({exc.name} is not installed)",
        field=field,
    )
