"""The one place that chooses the state backend: ``[state] backend`` in the settings.

A new backend is one module implementing ``StatePort`` plus one entry here (and its name in
``bridge.settings.STATE_BACKENDS``), and its run of the contract suite (tests/contract), which goes
through ``build_state`` for every name in ``STATE_BUILDERS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from bridge.core.errors import ConfigError
from bridge.settings import STATE_BACKENDS, Settings, StorageSettings
from bridge.state.base import StatePort
from bridge.state.driftport import DriftPort
from bridge.state.memory import MemoryState, MemoryStateData
from bridge.state.sqlite import SqliteState
from bridge.storage.pgconfig import PgOptions, missing_extra

# (the storage, the settings when a builder needs more than the storage: a database's URL and schema)
StateBuilder = Callable[[StorageSettings, Settings | None], StatePort]


def _sqlite(storage: StorageSettings, settings: Settings | None) -> StatePort:
    return SqliteState(storage.data_dir / "state.db", synchronous=storage.synchronous)


_MEMORY: dict[Path, MemoryStateData] = {}


def _memory(storage: StorageSettings, settings: Settings | None) -> StatePort:
    """The in-memory double (tests): one data set per data directory, for the life of the process."""
    data = _MEMORY.setdefault(storage.data_dir.resolve(), MemoryStateData())
    return MemoryState(data)


def _postgres(storage: StorageSettings, settings: Settings | None) -> StatePort:
    """Tables in ``[database] schema`` of ``DUALWRITE_DATABASE_URL`` (a secret, never logged)."""
    if settings is None:
        raise ConfigError("the postgres state store is built from the settings", field="state.backend")
    try:  # psycopg only when chosen: the postgres extra
        from bridge.state.postgres import PostgresState
    except ModuleNotFoundError as exc:
        raise missing_extra(exc, "state.backend") from exc
    db = settings.database
    return PostgresState(
        settings.database_url.get_secret_value(),
        schema=db.db_schema,
        options=PgOptions(db.pool_min, db.pool_max, db.synchronous_commit),
    )


# Every backend a state store can be built with. Settings accept STATE_BACKENDS; "memory" is the double.
STATE_BUILDERS: Mapping[str, StateBuilder] = {"sqlite": _sqlite, "memory": _memory, "postgres": _postgres}


def build_state(backend: str, storage: StorageSettings, *, settings: Settings | None = None) -> StatePort:
    """The state store of ``backend``, not opened yet."""
    builder = STATE_BUILDERS.get(backend)
    if builder is None:
        raise ConfigError(
            f"unknown state backend {backend!r}; accepted: {', '.join(STATE_BACKENDS)}", field="state.backend"
        )
    return builder(storage, settings)


def create_state(settings: Settings) -> StatePort:
    """The state store the settings choose (``[state] backend``, ``[storage]``, ``[database]``), not
    opened yet."""
    return build_state(settings.state.backend, settings.storage, settings=settings)


def drift_state(state: StatePort) -> DriftPort:
    """The drift checks and watermarks of ``state`` (every backend here keeps them)."""
    if not isinstance(state, DriftPort):
        raise ConfigError(
            f"the state backend {type(state).__name__} keeps no drift checks", field="state.backend"
        )
    return state
