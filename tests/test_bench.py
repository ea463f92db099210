"""The benchmark harness itself: its options, and one smoke run of a section (figures, not timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import _sync_settings
from bench.record import Note, Recording

REPO = Path(__file__).resolve().parents[1]


def _note(record: int, seq: int) -> Note:
    return Note(record=record, seq=seq, path="/webhooks/scm", query="", headers=(), body=b"{}")


def test_final_values_are_each_records_last_change() -> None:
    creates = [_note(0, 0), _note(1, 1)]
    updates = [_note(0, 2), _note(0, 3)]
    recording = Recording("scm", "K", 2, creates, updates)
    assert recording.final_values() == {"K00000": "u0000003", "K00001": "c0000001"}


def test_sync_settings_take_json_values_and_bare_strings() -> None:
    assert _sync_settings(["coalesce_writes=false", "concurrency=32", "note=plain"]) == {
        "coalesce_writes": False,
        "concurrency": 32,
        "note": "plain",
    }


@pytest.mark.parametrize("bad", ["coalesce_writes", "=1", " =true"])
def test_sync_settings_refuse_what_is_not_key_value(bad: str) -> None:
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        _sync_settings([bad])


def _quick(section: str, tmp_path: Path) -> tuple[dict[str, Any], str]:
    """``python -m bench --quick --only SECTION``: its JSON figures and its printed table."""
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", section, "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(out.read_text(encoding="utf-8")), done.stdout


def test_quick_cost_section_writes_its_figures(tmp_path: Path) -> None:
    figures, table = _quick("cost", tmp_path)
    assert figures["cost_changes"] == 2200  # 200 creates + 2,000 updates, every one through the bridge
    for key in (
        "cost_intake_us_per_change",
        "cost_apply_us_per_change",
        "cost_intake_per_s",
        "cost_apply_per_s",
    ):
        assert figures[key] > 0, key
    assert "cost: bridge CPU per change, apply" in table


def test_quick_sync_section_times_every_save_inside_the_bridge_process(tmp_path: Path) -> None:
    figures, table = _quick("sync", tmp_path)
    assert figures["sync_changes"] == 80  # 20 creates + 60 updates, each one synchronous webhook
    assert figures["sync_latency_changes"] == 15
    assert figures["sync_scm_calls_per_change"] >= 1  # each save made its F&O write inside the call
    assert 0 < figures["sync_added_ms_p50"] < figures["sync_webhook_ms_p50"]
    assert figures["sync_direct_scm_write_ms_p50_at_50ms"] >= 50  # the latency fault was on
    assert "sync: added by the bridge, p50" in table


def test_quick_restart_section_times_each_kill_with_the_default_lease(tmp_path: Path) -> None:
    figures, table = _quick("restart", tmp_path)
    each = figures["restart_recovery_s_each"]
    assert figures["restart_kills"] == len(each) == 3
    assert figures["restart_lease_s"] == 60  # the bridge's default: no short lease in this section
    assert figures["restart_recovery_s"] == max(each) > 0
    assert sum(figures["restart_held_leases"]) > 0  # the kills landed while it held changes
    assert figures["restart_settled_before_lease_end"] == 3  # what it held did not wait the lease out
    assert "restart: kill -9 to converged, longest" in table


def test_quick_attack_section_times_healthz_while_bombs_are_refused(tmp_path: Path) -> None:
    figures, table = _quick("attack", tmp_path)
    assert figures["attack_bombs"] > 0
    # Every bomb refused: answered 401, or (0) its connection reset by the bridge's close while the
    # sender was still writing the unread body, which can drop the 401 on the way (TCP RST). None
    # was taken: no other status.
    assert set(figures["attack_statuses"]) <= {"401", "0"}, figures["attack_statuses"]
    assert figures["attack_refused"] >= 0.9 * figures["attack_bombs"]
    assert figures["attack_bomb_expands_to"] >= 1000 * figures["attack_bomb_bytes"]  # a real bomb
    assert figures["attack_healthz_calls"] >= 20
    assert figures["attack_healthz_ms_max"] >= figures["attack_healthz_ms_p50"] > 0
    assert "attack: slowest /healthz under compression bombs" in table


def test_quick_workorder_section_measures_documents_against_raw_change_sets(tmp_path: Path) -> None:
    """Issue 23: work orders with 10 lines end to end, and the same documents as raw F&O change sets."""
    figures, table = _quick("workorder", tmp_path)
    assert figures["workorder_docs"] == 20 and figures["workorder_lines_per_doc"] == 10
    assert figures["workorder_missing_lines"] == 0  # every line of every work order reached F&O
    assert figures["workorder_docs_per_s"] > 0 and figures["workorder_raw_docs_per_s"] > 0
    ratio = figures["workorder_docs_per_s"] / figures["workorder_raw_docs_per_s"]
    assert figures["workorder_ratio_to_raw"] == pytest.approx(ratio)
    assert "work orders (10 lines) -> sales orders: docs/s" in table
