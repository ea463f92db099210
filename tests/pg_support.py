"""PostgreSQL for the tests: the server at 127.0.0.1:5432 (database ``test``, trust auth), each test in
schemas of its own, dropped after it. Where no server answers, the PostgreSQL runs skip and say so.

``DUALWRITE_TEST_DATABASE_URL`` names another server (the tests never read ``DUALWRITE_DATABASE_URL``,
which is the bridge's own and may point at real data).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from pydantic import SecretStr

from bridge.settings import AuthSettings, DatabaseSettings, Settings, StorageSettings, SystemSettings
from bridge.state.base import StatePort
from bridge.state.factory import build_state

PG_URL = os.environ.get("DUALWRITE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")

SchemaFactory = Callable[[str], str]


@cache
def pg_unavailable() -> str | None:
    """Why PostgreSQL cannot be used here, or None when it answers (asked once per run)."""
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"no PostgreSQL answers at {PG_URL} ({str(exc).strip().splitlines()[0]})"
    return None


def require_pg() -> None:
    reason = pg_unavailable()
    if reason is not None:
        pytest.skip(f"PostgreSQL tests skipped: {reason}")


def drop_schemas(names: list[str]) -> None:
    if not names:
        return
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def pg_schemas() -> Iterator[SchemaFactory]:
    """``schema(name)``: a schema of this test (the same name, the same schema), dropped after it.
    Skips the test when no PostgreSQL answers."""
    require_pg()
    prefix = f"t_{secrets.token_hex(5)}"
    made: dict[str, str] = {}

    def schema(name: str) -> str:
        return made.setdefault(name, f"{prefix}_{''.join(c if c.isalnum() else '_' for c in name.lower())}")

    yield schema
    drop_schemas(list(made.values()))


def pg_settings(schema: str, data_dir: Path | None = None) -> Settings:
    """Settings whose queue and state are PostgreSQL tables in ``schema`` (systems unreachable)."""
    return Settings(
        cds=SystemSettings(url="https://127.0.0.1:9/api/data/v9.2", scope="https://cds/.default"),
        scm=SystemSettings(url="https://127.0.0.1:9/data", scope="https://scm/.default"),
        auth=AuthSettings(authority="https://127.0.0.1:9/tenant", client_id="c"),
        storage=StorageSettings(data_dir=data_dir or Path(".dualwrite/unused")),
        database=DatabaseSettings(db_schema=schema),
        database_url=SecretStr(PG_URL),
        queue={"backend": "postgres"},  # type: ignore[arg-type]
        state={"backend": "postgres"},  # type: ignore[arg-type]
    )


def contract_state(request: pytest.FixtureRequest, data_dir: Path, name: str) -> StatePort:
    """The state store of the contract suites' backend ``request.param`` for storage ``name``: for
    "postgres", in a schema of this test (skipped where no PostgreSQL answers)."""
    if request.param != "postgres":
        return build_state(request.param, StorageSettings(data_dir=data_dir))
    require_pg()
    schema: SchemaFactory = request.getfixturevalue("pg_schemas")
    return build_state("postgres", StorageSettings(data_dir=data_dir), settings=pg_settings(schema(name)))
