"""Profile the bridge's hot path: ``dualwrite serve`` under pyinstrument during a live run
(F&O -> Dataverse updates). Writes the session plus two text views (call tree, and flat by own time).
This run is for the profile only: the profiler slows the bridge, so its rates are not figures."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bench.live import Keys, record, run_process


async def run_profile(
    state_dir: Path, workdir: Path, *, records: int, updates: int, lanes: int, keys: Keys
) -> Path:
    recording = await record(state_dir, "scm", records, updates, "PR", keys)
    session = workdir / "bridge.pyisession"
    await run_process(
        state_dir, workdir / "profile-bridge", recording, "bridge", keys, lanes=lanes, profile_to=session
    )
    tree, flat = workdir / "profile-tree.txt", workdir / "profile-flat.txt"
    render = [sys.executable, "-m", "pyinstrument", f"--load={session}", "-r", "text"]
    for out, option in ((tree, "processor_options.filter_threshold=0.01"), (flat, "flat=true")):
        proc = await asyncio.create_subprocess_exec(*render, "-o", str(out), "-p", option)
        if await proc.wait() != 0:
            raise RuntimeError(f"pyinstrument could not render {session}")
    return flat
