"""``dualwrite sandbox`` as a separate process, driven by independent clients: msal for tokens,
``requests`` for OData calls written as in Microsoft's documentation examples."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msal
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
INFO_KEYS = {
    *("authority", "tenant_id", "client_id", "client_secret", "user_client_id", "user_client_secret"),
    *("cds_url", "cds_scope", "scm_url", "scm_scope", "ca_file", "admin_key"),
    *("cds_admin_url", "scm_admin_url"),
}


def _start(state: Path, info_file: Path, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "bridge.cli", "sandbox", "--host", "127.0.0.1", "--authority-port", "0"]
    cmd += ["--cds-port", "0", "--scm-port", "0", "--state-dir", str(state)]
    cmd += ["--info-file", str(info_file), *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(info_file: Path, proc: subprocess.Popen[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if info_file.exists():
            return dict(json.loads(info_file.read_text()))
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"sandbox exited {proc.returncode}: {err}")
        time.sleep(0.05)
    raise AssertionError("no info file")


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str]:
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=10)
    return proc.returncode, out


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[dict[str, Any], subprocess.Popen[str], Path]]:
    state, info_file = tmp_path / "state", tmp_path / "info.json"
    proc = _start(state, info_file)
    try:
        yield _wait_for(info_file, proc), proc, state
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _session(info: dict[str, Any]) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise override verify
    session.verify = info["ca_file"]
    return session


def _token(info: dict[str, Any], scope: str, session: requests.Session) -> str:
    app = msal.ConfidentialClientApplication(
        info["client_id"],
        client_credential=info["client_secret"],
        authority=info["authority"],
        instance_discovery=False,
        http_client=session,
    )
    result = app.acquire_token_for_client([scope])
    assert "access_token" in result, result
    return str(result["access_token"])


def test_sandbox_process_serves_msal_and_documented_odata_calls(running: Any) -> None:
    info, proc, state = running
    assert info.keys() >= INFO_KEYS
    assert info["cds_url"].endswith("/api/data/v9.2") and info["scm_url"].endswith("/data")
    assert (state / "ca.pem").read_text() == Path(info["ca_file"]).read_text()
    s = _session(info)
    cds = {
        "Authorization": f"Bearer {_token(info, info['cds_scope'], s)}",
        "OData-MaxVersion": "4.0",
        "OData-Version": "4.0",
        "Accept": "application/json",
    }
    who = s.get(f"{info['cds_url']}/WhoAmI", headers=cds)
    assert who.status_code == 200 and who.json()["UserId"]
    query = "$select=cdm_companyid&$filter=cdm_companycode eq 'USMF'"
    company = s.get(f"{info['cds_url']}/cdm_companies?{query}", headers=cds).json()["value"][0][
        "cdm_companyid"
    ]
    created = s.post(
        f"{info['cds_url']}/msdyn_shipvias",
        headers={**cds, "Content-Type": "application/json; charset=utf-8"},
        data=json.dumps({"msdyn_name": "AIR", "msdyn_company@odata.bind": f"/cdm_companies({company})"}),
    )
    assert created.status_code == 204
    row = s.get(created.headers["OData-EntityId"], headers=cds)
    assert row.status_code == 200 and row.json()["msdyn_name"] == "AIR"

    scm = {"Authorization": f"Bearer {_token(info, info['scm_scope'], s)}", "Accept": "application/json"}
    posted = s.post(
        f"{info['scm_url']}/DeliveryModesV2",
        headers={**scm, "Content-Type": "application/json"},
        json={"dataAreaId": "usmf", "ModeCode": "AIR", "ModeDescription": "Air"},
    )
    assert posted.status_code == 201
    got = s.get(f"{info['scm_url']}/DeliveryModesV2(dataAreaId='usmf',ModeCode='AIR')", headers=scm)
    assert got.status_code == 200 and got.json()["ModeDescription"] == "Air"
    admin = s.get(f"{info['scm_admin_url']}/writes", headers={"x-sandbox-admin-key": info["admin_key"]})
    assert admin.status_code == 200 and len(admin.json()) == 1

    code, out = _stop(proc)
    assert code == 0
    assert info["cds_url"] in out and info["client_secret"] in out and "stopping" in out


def test_restart_keeps_the_ca_and_credentials(running: Any, tmp_path: Path) -> None:
    info, proc, state = running
    ca_before = Path(info["ca_file"]).read_bytes()
    assert _stop(proc, signal.SIGINT)[0] == 0
    again_file = tmp_path / "again.json"
    proc2 = _start(state, again_file, "--duration", "30")
    try:
        again = _wait_for(again_file, proc2)
        assert Path(again["ca_file"]).read_bytes() == ca_before
        assert (again["client_id"], again["client_secret"]) == (info["client_id"], info["client_secret"])
        s = _session(again)  # a client that trusted the old ca.pem still connects
        assert _token(again, again["cds_scope"], s)
    finally:
        assert _stop(proc2)[0] == 0


def test_busy_port_is_reported_not_a_traceback(running: Any, tmp_path: Path) -> None:
    info, _, state = running
    port = info["cds_url"].split(":")[2].split("/")[0]
    cmd = [sys.executable, "-m", "bridge.cli", "sandbox", "--authority-port", "0", "--scm-port", "0"]
    cmd += ["--cds-port", port, "--state-dir", str(state), "--duration", "1"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert done.returncode == 2
    assert "cannot start" in done.stderr and "Traceback" not in done.stderr
