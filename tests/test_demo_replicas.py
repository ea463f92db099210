"""``dualwrite demo --replicas 3 --database-url …`` as a newcomer runs it: three bridge processes on
PostgreSQL in a schema of the demo's own (reset at start, nothing else in the database touched),
behind the round-robin front at the bridge address; kill one and the others carry on.

Skipped, saying so, where no PostgreSQL answers (tests/pg_support.py)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests

from tests.pg_support import PG_URL, drop_schemas, require_pg
from tests.test_cli import CLI, _dataverse_rows, _person

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def schemas() -> Iterator[tuple[str, str]]:
    """(the demo's schema, a schema of other data that must survive): the demo's holds a table from
    an earlier run, the other a row."""
    require_pg()
    demo, other = f"t_{secrets.token_hex(4)}_demo", f"t_{secrets.token_hex(4)}_other"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {demo}")
        conn.execute(f"CREATE TABLE {demo}.leftover (n int)")
        conn.execute(f"CREATE SCHEMA {other}")
        conn.execute(f"CREATE TABLE {other}.keep (n int)")
        conn.execute(f"INSERT INTO {other}.keep VALUES (7)")
    yield demo, other
    drop_schemas([demo, other])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # not our child: nothing to reap
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_three_replicas_behind_the_front_carry_on_when_one_is_killed(
    tmp_path: Path, schemas: tuple[str, str]
) -> None:
    demo_schema, other = schemas
    info_file = tmp_path / "demo.json"
    proc = subprocess.Popen(
        [
            *CLI,
            "--log-level",
            "WARNING",
            "demo",
            "--replicas",
            "3",
            "--database-url",
            PG_URL,
            "--schema",
            demo_schema,
            *("--port", "0", "--authority-port", "0", "--cds-port", "0", "--scm-port", "0"),
            *("--state-dir", str(tmp_path / "state"), "--duration", "150", "--info-file", str(info_file)),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for _ in range(1200):
            if info_file.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert info_file.exists(), proc.stdout.read() if proc.stdout else ""
        info = json.loads(info_file.read_text())
        replicas = info["replicas"]
        assert [sorted(r) for r in replicas] == [["pid", "url"]] * 3
        assert all(_alive(r["pid"]) for r in replicas)
        owners = {requests.get(f"{r['url']}/readyz", timeout=10).json()["replica"] for r in replicas}
        assert len(owners) == 3  # each its own lease owner
        ready = requests.get(f"{info['bridge_url']}/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["state"] is True, ready.text
        # The seed went through the front both ways (a synchronous Dataverse step, F&O's data events).
        assert [
            r["msdyn_description"]
            for r in _dataverse_rows(info, "msdyn_shipvias?$filter=msdyn_name eq 'Truck'")
        ] == ["Truck freight"]

        os.kill(replicas[0]["pid"], signal.SIGKILL)
        http, token = _person(info)
        made = http.post(
            f"{info['scm_url']}/DeliveryModesV2",
            json={"dataAreaId": "usmf", "ModeCode": "Kill", "ModeDescription": "after a kill -9"},
            headers={"Authorization": f"Bearer {token(info['scm_scope'])}"},
        )
        assert made.status_code == 201, made.text
        rows = _dataverse_rows(info, "msdyn_shipvias?$filter=msdyn_name eq 'Kill'")
        assert [r["msdyn_description"] for r in rows] == ["after a kill -9"]
    finally:
        proc.terminate()
        code = proc.wait(timeout=60)
    assert code == 0
    assert not any(_alive(r["pid"]) for r in replicas)  # SIGTERM reached the rest: they stopped
    with psycopg.connect(PG_URL) as conn:
        assert conn.execute(f"SELECT n FROM {other}.keep").fetchall() == [(7,)]  # untouched
        tables = {
            name
            for (name,) in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (demo_schema,)
            )
        }
    assert "leftover" not in tables and tables  # reset at start, then the bridge's own tables
