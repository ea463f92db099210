"""Profile the bridge's hot path: ``dualwrite serve`` under pyinstrument during a live run
(F&O -> Dataverse updates). Writes the session plus two text views (call tree, and flat by own time).
This run is for the profile only: the profiler slows the bridge, so its rates are not figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.live import Keys, record, run_process


async def run_profile(state_dir: Path, workdir: Path, *, records: int, updates: int, lanes: int, keys: Keys) -> Path:
    recording = await record(state_dir, "scm", records, updates, "PR", keys)
    session = workdir / "bridge.pyisession"
    await run_process(state_dir, workdir / "profile-bridge", recording, "bridge", keys, lanes=lanes, profile_to=session)
    tree, flat = workdir / "profile-tree.txt", workdir / "profile-flat.txt"
    render = [sys.executable, "-m", "pyinstrument", f"--load={session}", "-r", "text"]
    subprocess.run([*render, "-o", str(tree), "-p", "processor_options.filter_threshold=0.01"], check=True)
    subprocess.run([*render, "-o", str(flat), "-p", "flat=true"], check=True)
    return flat
