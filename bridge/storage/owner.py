"""Who this bridge is to its queue: an owner id kept in the data directory.

Every lease names its owner, so a bridge restarted after a crash (kill -9, OOM kill, power loss)
recognises the leases it held and takes them back at once (``LeaseReclaim.reclaim``) instead of
waiting for them to run out. The id is made once, at the first start, and kept in
``<data_dir>/owner-id``: the same data directory is the same owner across restarts, and two data
directories (two replicas) are two owners.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from bridge.core.errors import ConfigError

OWNER_FILE = "owner-id"


def owner_id(data_dir: Path) -> str:
    """The owner id of the bridge that keeps its data in ``data_dir``, created on first use."""
    path = data_dir / OWNER_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        candidate = data_dir / f".{OWNER_FILE}.{secrets.token_hex(4)}"
        candidate.write_text(f"bridge-{secrets.token_hex(8)}\n", encoding="ascii")
        try:
            # link, not rename: it fails if another process made the file first, and then that id wins
            with contextlib.suppress(FileExistsError):
                os.link(candidate, path)
        finally:
            candidate.unlink()
    owner = path.read_bytes().decode("ascii", errors="replace").strip()
    if not owner or not owner.isprintable() or "\ufffd" in owner or len(owner) > 200:
        raise ConfigError(f"{path} holds no usable owner id: delete it to make a new one")
    return owner
