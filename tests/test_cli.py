"""The ``dualwrite`` command as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "bridge.cli"]


def test_mappings_check_accepts_the_shipped_files() -> None:
    done = subprocess.run(
        [*CLI, "mappings", "check", "--dir", str(ROOT / "mappings")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for name in ("warehouse", "customer_asset", "customer_asset_category", "payment_terms", "ship_via"):
        assert name in done.stdout


def test_mappings_check_names_the_file_and_field_of_a_mistake(tmp_path: Path) -> None:
    original = (ROOT / "mappings" / "ship_via.yaml").read_text()
    field = "{scm: ModeDescription, cds: msdyn_description}"
    assert field in original
    broken = original.replace(field, "{scm: ModeDescription, cds: msdyn_description, direction: sideways}")
    (tmp_path / "ship_via.yaml").write_text(broken)
    done = subprocess.run(
        [*CLI, "mappings", "check", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "ship_via.yaml" in done.stdout + done.stderr and "direction" in done.stdout + done.stderr


def test_serve_refuses_a_secret_in_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('client_secret = "oops"\n' + (ROOT / "deploy" / "dualwrite.example.toml").read_text())
    done = subprocess.run(
        [*CLI, "serve", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "DUALWRITE_CLIENT_SECRET" in done.stderr and "oops" not in done.stderr


def _start_demo(tmp_path: Path, info_file: Path, *, duration: int = 20) -> subprocess.Popen[str]:
    """``dualwrite demo`` on free ports with its state under ``tmp_path/state``; returns once the info
    file is written (the seed has been created by then)."""
    proc = subprocess.Popen(
        [
            *CLI,
            "--log-level",
            "WARNING",
            "demo",
            "--port",
            "0",
            "--authority-port",
            "0",
            "--cds-port",
            "0",
            "--scm-port",
            "0",
            "--state-dir",
            str(tmp_path / "state"),
            "--duration",
            str(duration),
            "--info-file",
            str(info_file),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for _ in range(300):
        if info_file.exists() or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert info_file.exists(), proc.stdout.read() if proc.stdout else ""
    return proc


def _person(info: dict[str, Any]) -> tuple[requests.Session, Callable[[str], str]]:
    """An HTTP session that trusts the sandbox CA, and tokens for the sandbox's person-like client."""
    http = requests.Session()
    http.trust_env = False
    http.verify = info["ca_file"]  # trust the sandbox CA; never verify=False

    def token(scope: str) -> str:
        resp = http.post(
            f"{info['authority']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": info["user_client_id"],
                "client_secret": info["user_client_secret"],
                "scope": scope,
            },
        )
        resp.raise_for_status()
        return str(resp.json()["access_token"])

    return http, token


def _dataverse_rows(info: dict[str, Any], query: str) -> list[dict[str, Any]]:
    """The rows a person reads from the emulated Dataverse, waiting up to 10 s for the first."""
    http, token = _person(info)
    cds_token = token(info["cds_scope"])
    rows: list[dict[str, Any]] = []
    for _ in range(100):
        answer = http.get(f"{info['cds_url']}/{query}", headers={"Authorization": f"Bearer {cds_token}"})
        rows = answer.json()["value"]
        if rows:
            break
        time.sleep(0.1)
    return rows


def test_demo_run_twice_syncs_its_seed_both_times(tmp_path: Path) -> None:
    # The emulators start empty every time; the bridge state of the first run must not make the
    # second skip the seed as "no change since last sync".
    for run in (1, 2):
        info_file = tmp_path / f"demo{run}.json"
        proc = _start_demo(tmp_path, info_file)
        try:
            info = json.loads(info_file.read_text())
            rows = _dataverse_rows(info, "msdyn_shipvias?$filter=msdyn_name eq 'Truck'")
            assert [r["msdyn_description"] for r in rows] == ["Truck freight"], f"run {run}"
        finally:
            proc.terminate()
            assert proc.wait(timeout=30) == 0


def test_demo_runs_syncs_and_writes_its_info_file(tmp_path: Path) -> None:
    info_file = tmp_path / "demo.json"
    proc = _start_demo(tmp_path, info_file)
    try:
        info = json.loads(info_file.read_text())
        for key in (
            "authority",
            "client_id",
            "client_secret",
            "cds_url",
            "cds_scope",
            "scm_url",
            "scm_scope",
            "ca_file",
            "bridge_url",
            "cds_webhook_url",
            "scm_webhook_url",
            "cds_webhook_headers",
            "scm_webhook_headers",
            "admin_token",
        ):
            assert key in info, key
        assert info["cds_url"].endswith("/api/data/v9.2") and info["scm_url"].endswith("/data")
        assert isinstance(info["scm_webhook_headers"], dict) and "?code=" in info["cds_webhook_url"]

        http, token = _person(info)

        made = http.post(
            f"{info['scm_url']}/DeliveryModesV2",
            json={"dataAreaId": "usmf", "ModeCode": "Cli", "ModeDescription": "from the CLI test"},
            headers={"Authorization": f"Bearer {token(info['scm_scope'])}"},
        )
        assert made.status_code == 201, made.text
        rows = _dataverse_rows(info, "msdyn_shipvias?$filter=msdyn_name eq 'Cli'")
        assert rows and rows[0]["msdyn_description"] == "from the CLI test"
        maps = http.get(
            f"{info['bridge_url']}/api/maps", headers={"Authorization": f"Bearer {info['admin_token']}"}
        )
        assert maps.status_code == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0  # a clean shutdown on SIGTERM
