"""The ``dualwrite`` command as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

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


def test_demo_runs_syncs_and_writes_its_info_file(tmp_path: Path) -> None:
    info_file = tmp_path / "demo.json"
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
            "20",
            "--info-file",
            str(info_file),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for _ in range(300):
            if info_file.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert info_file.exists(), proc.stdout.read() if proc.stdout else ""
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

        made = http.post(
            f"{info['scm_url']}/DeliveryModesV2",
            json={"dataAreaId": "usmf", "ModeCode": "Cli", "ModeDescription": "from the CLI test"},
            headers={"Authorization": f"Bearer {token(info['scm_scope'])}"},
        )
        assert made.status_code == 201, made.text
        cds_token = token(info["cds_scope"])
        for _ in range(100):
            rows = http.get(
                f"{info['cds_url']}/msdyn_shipvias?$filter=msdyn_name eq 'Cli'",
                headers={"Authorization": f"Bearer {cds_token}"},
            ).json()["value"]
            if rows:
                break
            time.sleep(0.1)
        assert rows and rows[0]["msdyn_description"] == "from the CLI test"
        maps = http.get(
            f"{info['bridge_url']}/api/maps", headers={"Authorization": f"Bearer {info['admin_token']}"}
        )
        assert maps.status_code == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0  # a clean shutdown on SIGTERM
