"""The factories: one per port, choosing the backend from the settings; and the bridge using them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from bridge.app import Bridge
from bridge.core.errors import ConfigError
from bridge.demo import default_mappings_dir
from bridge.queue.factory import QUEUE_BUILDERS, build_queue, create_queue, open_queue
from bridge.queue.memory import MemoryQueue
from bridge.queue.postgres import PostgresQueue
from bridge.queue.servicebus import ServiceBusQueue
from bridge.queue.sqlite import SqliteQueue
from bridge.settings import (
    QUEUE_BACKENDS,
    STATE_BACKENDS,
    AuthSettings,
    DatabaseSettings,
    QueueSettings,
    Settings,
    StateSettings,
    StorageSettings,
    SystemSettings,
    load_settings,
)
from bridge.state.factory import STATE_BUILDERS, build_state, create_state
from bridge.state.memory import MemoryState
from bridge.state.postgres import PostgresState
from bridge.state.sqlite import SqliteState
from bridge.storage.owner import owner_id
from tests.contract.queue_support import make_event


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        cds=SystemSettings(url="https://127.0.0.1:9/api/data/v9.2", scope="https://cds/.default"),
        scm=SystemSettings(url="https://127.0.0.1:9/data", scope="https://scm/.default"),
        auth=AuthSettings(authority="https://127.0.0.1:9/tenant", client_id="c"),
        storage=StorageSettings(data_dir=tmp_path / "data"),
        mappings_dir=default_mappings_dir(),
        client_secret=SecretStr("s3cret"),
        cds_webhook_key=SecretStr("cds-key-for-tests-0123"),
        scm_webhook_key=SecretStr("scm-key-for-tests-0123"),
        admin_token=SecretStr("admin-token-for-tests"),
    )


def test_every_backend_the_settings_accept_can_be_built() -> None:
    assert set(QUEUE_BACKENDS) <= set(QUEUE_BUILDERS)
    assert set(STATE_BACKENDS) <= set(STATE_BUILDERS)


def test_the_default_is_sqlite_in_the_data_directory(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert (settings.queue.backend, settings.state.backend) == ("sqlite", "sqlite")
    queue = create_queue(settings, owner="bridge-1")
    state = create_state(settings)
    assert isinstance(queue, SqliteQueue) and queue.path == tmp_path / "data" / "queue.db"
    assert queue.owner == "bridge-1"
    assert isinstance(state, SqliteState) and state.path == tmp_path / "data" / "state.db"


@pytest.mark.parametrize("section", ["queue", "state"])
def test_an_unknown_backend_in_the_file_names_the_accepted_ones(tmp_path: Path, section: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[cds]\nurl = "https://x/api/data/v9.2"\nscope = "s"\n[scm]\nurl = "https://x/data"\nscope = "s"\n'
        f'[auth]\nauthority = "https://x/t"\nclient_id = "c"\n[{section}]\nbackend = "mysql"\n'
    )
    with pytest.raises(ConfigError) as exc:
        load_settings(config)
    message = str(exc.value)
    assert f"{section}.backend" in message and "'mysql'" in message and "accepted: sqlite" in message


def test_the_factories_refuse_an_unknown_backend_by_name(tmp_path: Path) -> None:
    storage = StorageSettings(data_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"queue\.backend.*unknown queue backend 'rabbitmq'.*sqlite"):
        build_queue("rabbitmq", storage, owner="x")
    with pytest.raises(ConfigError, match=r"state\.backend.*unknown state backend 'mysql'.*sqlite"):
        build_state("mysql", storage)


async def test_the_memory_doubles_keep_their_data_per_data_directory(tmp_path: Path) -> None:
    a, b = StorageSettings(data_dir=tmp_path / "a"), StorageSettings(data_dir=tmp_path / "b")
    queue = build_queue("memory", a, owner="x")
    assert isinstance(queue, MemoryQueue)
    await open_queue(queue)
    assert await queue.enqueue(make_event(1)) is True
    await queue.close()
    assert await build_queue("memory", a, owner="x").depth() == 1
    assert await build_queue("memory", b, owner="x").depth() == 0
    assert isinstance(build_state("memory", a), MemoryState)


async def test_open_queue_says_how_many_leases_it_took_back(tmp_path: Path) -> None:
    storage = StorageSettings(data_dir=tmp_path)
    queue = build_queue("sqlite", storage, owner="me")
    assert await open_queue(queue) == 0
    await queue.enqueue_many([make_event(1, key="A"), make_event(2, key="B")])
    assert len(await queue.lease(10, 60)) == 2
    await queue.close()  # as a kill leaves it: two leases held, 60 s to run
    queue = build_queue("sqlite", storage, owner="me")
    try:
        assert await open_queue(queue) == 2
        assert len(await queue.lease(10, 60)) == 2
    finally:
        await queue.close()


def test_the_bridge_builds_its_stores_through_the_factories_and_names_its_owner(tmp_path: Path) -> None:
    bridge = Bridge(_settings(tmp_path))
    assert bridge.owner == owner_id(tmp_path / "data")
    assert isinstance(bridge.queue, SqliteQueue) and bridge.queue.owner == bridge.owner
    assert isinstance(bridge.state, SqliteState)


def test_the_postgres_queue_takes_its_url_from_the_secret_and_its_schema_from_the_settings(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path).model_copy(
        update={
            "queue": QueueSettings(backend="postgres"),
            "database": DatabaseSettings(db_schema="bridge_a"),
            "database_url": SecretStr("postgresql://bridge:pw@db.example:5432/sync"),
        }
    )
    queue = create_queue(settings, owner="bridge-1")
    assert isinstance(queue, PostgresQueue) and queue.owner == "bridge-1"
    assert queue.db.schema == "bridge_a"
    assert queue.db.where == "PostgreSQL at db.example:5432/sync schema bridge_a"  # never the password


def test_the_postgres_backend_without_a_url_names_the_variable(tmp_path: Path) -> None:
    settings = _settings(tmp_path).model_copy(update={"queue": QueueSettings(backend="postgres")})
    with pytest.raises(ConfigError, match="DUALWRITE_DATABASE_URL"):
        create_queue(settings, owner="bridge-1")


def test_a_database_url_in_the_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[cds]\nurl = "https://x/api/data/v9.2"\nscope = "s"\n[scm]\nurl = "https://x/data"\nscope = "s"\n'
        '[auth]\nauthority = "https://x/t"\nclient_id = "c"\n[database]\nurl = "postgresql://u:pw@h/db"\n'
    )
    with pytest.raises(ConfigError, match="DUALWRITE_DATABASE_URL"):
        load_settings(config)


def test_the_database_schema_is_read_from_the_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[cds]\nurl = "https://x/api/data/v9.2"\nscope = "s"\n[scm]\nurl = "https://x/data"\nscope = "s"\n'
        '[auth]\nauthority = "https://x/t"\nclient_id = "c"\n[queue]\nbackend = "postgres"\n'
        '[database]\nschema = "bridge_prod"\npool_max = 8\n'
    )
    settings = load_settings(config)
    assert (settings.queue.backend, settings.database.db_schema, settings.database.pool_max) == (
        "postgres",
        "bridge_prod",
        8,
    )
    config.write_text(config.read_text().replace("bridge_prod", "Bad-Name"))
    with pytest.raises(ConfigError, match=r"database\.schema"):
        load_settings(config)


def test_a_servicebus_queue_keeps_its_state_in_postgres(tmp_path: Path) -> None:
    settings = _settings(tmp_path).model_copy(
        update={
            "queue": QueueSettings(backend="servicebus"),
            "state": StateSettings(backend="postgres"),
            "database": DatabaseSettings(db_schema="bridge_sb"),
            "database_url": SecretStr("postgresql://bridge@db.example:5432/sync"),
            "servicebus_connection_string": SecretStr(
                "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0"
            ),
        }
    )
    assert isinstance(create_queue(settings, owner="bridge-1"), ServiceBusQueue)
    state = create_state(settings)
    assert isinstance(state, PostgresState) and state.db.schema == "bridge_sb"
