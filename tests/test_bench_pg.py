"""The benchmark's PostgreSQL section where no PostgreSQL answers: its keys are there, null, and the
reason is printed (the measured run is python -m bench --only pg, docs/performance.md)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PG_KEYS = (
    "pg_changes_per_s_1",
    "pg_changes_per_s_3",
    "pg_latency_ms_p50",
    "pg_latency_ms_p99",
    "pg_failover_s",
)


def test_without_postgresql_the_pg_keys_are_null_and_the_reason_is_printed(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "bench.json"
    env = {**os.environ, "DUALWRITE_BENCH_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/test"}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "pg", "--json", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert {key: figures[key] for key in PG_KEYS} == dict.fromkeys(PG_KEYS)
    assert f"pg: not measured: no PostgreSQL answers at 127.0.0.1:{port}/test" in done.stdout
    assert figures["pg_skipped"].startswith("no PostgreSQL answers")
