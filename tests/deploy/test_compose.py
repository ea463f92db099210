"""deploy/compose.yaml, offline (no container daemon here): PostgreSQL, three bridge replicas and the
emulators, each with a health check, wired by service name; secrets only by interpolation."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from bridge.sandbox.cli import write_info
from bridge.sandbox.runtime import Sandbox
from bridge.settings import SECRET_KEYS, load_settings
from tests.deploy.settings_names import DEPLOY, assert_documented_as_pending, is_setting

SANDBOX_STATE = "/var/lib/dualwrite-sandbox"


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    return data


def _services() -> dict[str, Any]:
    services: dict[str, Any] = _compose()["services"]
    return services


def test_the_cluster_is_postgres_three_replicas_and_the_emulators() -> None:
    services = _services()
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["bridge"]["deploy"]["replicas"] == 3
    assert services["bridge"]["build"]["target"] == "runtime"
    assert services["sandbox"]["build"]["target"] == "sandbox"
    assert services["sandbox"]["command"][0] == "sandbox"
    for service in services.values():
        if "build" in service:
            assert service["build"]["dockerfile"] == "deploy/Dockerfile"
            assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()


def test_every_long_running_service_has_a_health_check_and_the_replicas_wait_for_theirs() -> None:
    services = _services()
    for name in ("postgres", "sandbox", "bridge"):
        test = services[name]["healthcheck"]["test"]
        assert test[0] == "CMD" and len(test) > 1, name
    assert "/healthz" in services["bridge"]["healthcheck"]["test"][-1]
    assert services["bridge"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "sandbox": {"condition": "service_healthy"},
    }
    assert services["register"]["depends_on"] == {"bridge": {"condition": "service_healthy"}}


def test_the_emulators_listen_on_their_service_name() -> None:
    # Their certificate and the URLs in their info file carry --host; the replicas connect by it.
    command = _services()["sandbox"]["command"]
    assert command[command.index("--host") + 1] == "sandbox"
    assert command[command.index("--state-dir") + 1] == SANDBOX_STATE
    assert command[command.index("--info-file") + 1] == f"{SANDBOX_STATE}/info.json"
    health = _services()["sandbox"]["healthcheck"]["test"][-1]
    assert "'sandbox'" in health


def test_the_replicas_share_postgres_and_take_secrets_from_the_environment() -> None:
    bridge = _services()["bridge"]
    env: dict[str, str] = bridge["environment"]
    assert env["DUALWRITE_QUEUE__BACKEND"] == env["DUALWRITE_STATE__BACKEND"] == "postgres"
    assert re.fullmatch(r"postgresql://dualwrite:\$\{POSTGRES_PASSWORD:\?[^}]*\}@postgres:5432/dualwrite",
                        env["DUALWRITE_DATABASE_URL"])  # fmt: skip
    for service in _services().values():
        for name, value in (service.get("environment") or {}).items():
            if name == "DUALWRITE_DATABASE_URL":
                continue  # checked above: its one secret part is ${POSTGRES_PASSWORD:?}
            if name.removeprefix("DUALWRITE_").lower() in SECRET_KEYS or name == "POSTGRES_PASSWORD":
                pattern = r"\$\{" + re.escape(name) + r":\?[^}]*\}"
                assert re.fullmatch(pattern, value), f"{name} must come from the environment"
    assert f"sandbox-state:{SANDBOX_STATE}:ro" in bridge["volumes"]


def test_every_variable_is_a_setting_or_documented_as_not_yet_accepted() -> None:
    env = dict(_services()["bridge"]["environment"])
    assert all(is_setting(name) for name in _link_env_names())
    assert_documented_as_pending(env)


def _link_env_names() -> list[str]:
    from tests.deploy.sandbox_link_module import sandbox_link

    info = {key: "x" for key in ("cds_url", "cds_scope", "scm_url", "scm_scope", "authority", "client_id")}
    return list(sandbox_link.settings_env({**info, "ca_file": "x", "client_secret": "x"}))


def test_a_replica_gets_loadable_settings_from_a_running_sandbox(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: Any
) -> None:
    """What the replicas' entrypoint does, against the real emulators: their info file in, the
    bridge's settings out (the compose file's own variables beside them, backends aside)."""
    from tests.deploy.sandbox_link_module import sandbox_link

    info_file = tmp_path / "info.json"
    write_info(info_file, sandbox.info)
    exported = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in _run_link(["env", str(info_file)]).splitlines()
    )
    assert exported == sandbox_link.settings_env(sandbox_link.read_info(str(info_file)))
    for name, value in exported.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(DEPLOY / "container.toml")
    assert settings.cds.url == sandbox.info.cds_url and settings.scm.url == sandbox.info.scm_url
    assert settings.auth.authority == sandbox.info.authority
    assert str(settings.auth.ca_file) == sandbox.info.ca_file
    assert settings.client_secret.get_secret_value() == sandbox.info.client_secret


async def test_the_register_step_binds_fno_data_events_once(sandbox: Sandbox, tmp_path: Path) -> None:
    import asyncio

    from tests.deploy.sandbox_link_module import sandbox_link

    info_file = tmp_path / "info.json"
    write_info(info_file, sandbox.info)
    info = sandbox_link.read_info(str(info_file))
    url = "http://bridge:8080/webhooks/scm"
    # urllib blocks: off the loop that serves the emulators.
    first = await asyncio.to_thread(sandbox_link.bind_fno_endpoint, info, url, "k1")
    again = await asyncio.to_thread(sandbox_link.bind_fno_endpoint, info, url, "k1")
    assert (first, again) == (True, False)
    bound = [e for e in sandbox.notifier.fno.endpoints.values() if e.url == url]
    assert len(bound) == 1 and bound[0].headers == {"x-dualwrite-key": "k1"}


def _run_link(args: list[str]) -> str:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(DEPLOY / "sandbox_link.py"), *args],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return done.stdout
