"""Every command that talks to the systems takes ``--sandbox INFO_FILE`` instead of ``--config``:
``serve``, ``register``, ``sync record`` and ``mappings try``, each against a running sandbox over
real HTTPS, the person-like client making the changes (docs/operations.md, "Trying it on the
emulators")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bridge.infofile import SECRETS_FILE, read_info, run_data_dir, sandbox_settings
from tests.e2e.harness import Harness, eventually
from tests.tryit.conftest import dualwrite, serving


def test_settings_come_from_the_info_file_and_the_environment(
    info_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUALWRITE_ADMIN_TOKEN", "an-admin-token-from-the-environment")
    chosen = sandbox_settings(info_file)
    info = read_info(info_file)
    settings = chosen.settings
    assert settings.cds.url == info.cds_url and settings.scm.url == info.scm_url
    assert settings.auth.ca_file == Path(info.ca_file) and settings.client_secret.get_secret_value()
    assert settings.storage.data_dir == run_data_dir(info_file, info)
    # The environment's admin token wins; the webhook keys were generated, printed, and kept.
    assert settings.admin_token.get_secret_value() == "an-admin-token-from-the-environment"
    assert set(chosen.generated) == {"cds_webhook_key", "scm_webhook_key"}
    kept = json.loads((settings.storage.data_dir / SECRETS_FILE).read_text())
    assert kept["cds_webhook_key"] == settings.cds_webhook_key.get_secret_value()
    assert (settings.storage.data_dir / SECRETS_FILE).stat().st_mode & 0o077 == 0
    # A second command on the same sandbox run agrees on them.
    again = sandbox_settings(info_file).settings
    assert again.cds_webhook_key == settings.cds_webhook_key


async def test_a_missing_info_file_is_a_configuration_error(tmp_path: Path) -> None:
    ran = await dualwrite(
        "sync",
        "record",
        "--sandbox",
        str(tmp_path / "nope.json"),
        "--map",
        "ship_via",
        "--key",
        "X",
        "--from",
        "scm",
    )
    assert ran.status == 2 and "sandbox info file not found" in ran.err


async def test_register_with_sandbox_registers_both_emulators(sandbox: Any, info_file: Path) -> None:
    ran = await dualwrite(
        "register", "--sandbox", str(info_file), "--webhook-url", "http://127.0.0.1:9/webhooks/cds"
    )
    assert ran.status == 0, ran.err
    steps = sandbox.dataverse.rows("sdkmessageprocessingsteps")
    # Create/Update/Delete on every watched table: the five entity maps', the work order's and the
    # agreement invoice's headers and lines (products come from F&O: none), as tests/e2e/test_register.py.
    assert len(steps) == 30
    endpoints = list(sandbox.notifier.fno.endpoints.values())
    assert [e.url for e in endpoints] == ["http://127.0.0.1:9/webhooks/scm"]
    assert "admin_token" in ran.out  # generated: printed once


async def test_serve_with_sandbox_syncs_and_sync_record_reaches_it(
    sandbox: Any, info_file: Path, person: Harness, bridge_port: int
) -> None:
    async with serving(info_file, bridge_port) as served:
        assert f"127.0.0.1:{bridge_port}" in served.banner
        made = await person.scm_create("DeliveryModesV2", {"ModeCode": "Rail", "ModeDescription": "Rail"})
        assert made.status in (200, 201), made.body
        shipped = await eventually(
            lambda: person.cds_find("msdyn_shipvias", "msdyn_name", "Rail"), timeout=20, what="the ship via"
        )
        assert shipped["msdyn_description"] == "Rail"
        # The bridge runs: sync record asks it through the operations API.
        ran = await dualwrite(
            "sync",
            "record",
            "--sandbox",
            str(info_file),
            "--map",
            "ship_via",
            "--key",
            "Rail",
            "--from",
            "scm",
        )
        assert ran.status == 0, ran.err
        assert "Rail from scm" in ran.out
        lost = await dualwrite(
            "sync",
            "record",
            "--sandbox",
            str(info_file),
            "--map",
            "ship_via",
            "--key",
            "Nowhere",
            "--from",
            "cds",
        )
        assert lost.status == 1 and "not found" in lost.err
        served.process.terminate()
        await served.process.wait()
    # No bridge now (and Dataverse's synchronous steps refuse saves until it is back): a change made
    # in F&O meanwhile is undone from Dataverse's version by sync record, in this process.
    await person.scm_update("DeliveryModesV2", "ModeCode", "Rail", {"ModeDescription": "Rail freight"})
    ran = await dualwrite(
        "sync",
        "record",
        "--sandbox",
        str(info_file),
        "--map",
        "ship_via",
        "--key",
        "Rail",
        "--company",
        "usmf",
        "--from",
        "cds",
    )
    assert ran.status == 0, ran.err
    assert "applied" in ran.out
    mode = await person.scm_find("DeliveryModesV2", "ModeCode", "Rail")
    assert mode is not None and mode["ModeDescription"] == "Rail"
    lost = await dualwrite(
        "sync",
        "record",
        "--sandbox",
        str(info_file),
        "--map",
        "ship_via",
        "--key",
        "Nowhere",
        "--from",
        "scm",
    )
    assert lost.status == 1 and "not found: ship_via USMF/Nowhere" in lost.err


async def test_sync_initial_and_errors_take_the_sandbox(
    sandbox: Any, info_file: Path, person: Harness
) -> None:
    made = await person.scm_create("DeliveryModesV2", {"ModeCode": "Barge", "ModeDescription": "Barge"})
    assert made.status == 201, made.body
    writes = len(list(sandbox.dataverse.write_log))
    ran = await dualwrite(
        "sync",
        "initial",
        "--sandbox",
        str(info_file),
        "--map",
        "ship_via",
        "--master",
        "scm",
        "--dry-run",
        "--json",
    )
    assert ran.status == 0, ran.out + ran.err
    assert "Barge" in ran.out  # listed as what would be written
    assert len(list(sandbox.dataverse.write_log)) == writes  # a dry run
    listed = await dualwrite("sync", "errors", "--sandbox", str(info_file), "--json")
    assert listed.status == 0, listed.out + listed.err
