"""The plain initial sync: the baseline that prices the bridge's run (``bench.initial``).

The same reads of both sides (key-ordered pages, ``bridge.systems.pages``) and the same ``$batch``
change sets (``bridge.systems.bulk``) as ``dualwrite sync initial --map ship_via --master cds``, and
nothing else: F&O's whole table held in a dict, no pairing buffer, no state store, no ledger, no
checkpoints, no error records, no progress, no map states.

Run: ``python -m bench.initial_raw CONFIG.json`` (secret in ``RAW_CLIENT_SECRET``); prints one JSON
line: records, writes, seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bridge.core.compare import WriteKind
from bridge.core.events import System
from bridge.core.mapping import load_mappings
from bridge.engine.syncports import BulkWrite
from bridge.systems.auth import TokenProvider
from bridge.systems.bulk import ScmBulkSide
from bridge.systems.dataverse import DataverseClient
from bridge.systems.fno import FnoClient
from bridge.systems.pages import cds_pages, scm_pages


async def main(config: dict[str, Any], secret: str) -> dict[str, Any]:
    emap = load_mappings(Path(config["mappings_dir"])).maps["ship_via"]
    ca = config["ca_file"]

    def tokens(scope: str) -> TokenProvider:
        return TokenProvider(config["authority"], config["client_id"], secret, scope, ca_file=ca)

    cds = DataverseClient(config["cds_url"], tokens(config["cds_scope"]), ca_file=ca)
    scm = FnoClient(config["scm_url"], tokens(config["scm_scope"]), ca_file=ca)
    writer = ScmBulkSide(scm, batch_size=config["batch_size"], page_size=config["page_size"])
    started = time.perf_counter()
    records = writes = 0
    async with cds, scm:
        theirs: dict[str, dict[str, Any]] = {}
        async for page in scm_pages(scm, emap, "USMF", page_size=config["page_size"]):
            for r in page.records:
                theirs[r.key] = r.image
        async for page in cds_pages(cds, emap, "USMF", page_size=config["page_size"]):
            batch: list[BulkWrite] = []
            for r in page.records:
                records += 1
                payload = emap.to_target(System.CDS, r.image, {})
                row = theirs.pop(r.key, None)
                if row is None:
                    batch.append(BulkWrite("USMF", r.key, WriteKind.CREATE, payload))
                elif row.get("ModeDescription") != payload["ModeDescription"]:
                    batch.append(
                        BulkWrite("USMF", r.key, WriteKind.UPDATE, payload, etag=row.get("@odata.etag"))
                    )
            if batch:
                outcomes = await writer.write(emap, batch)
                writes += sum(o.ok for o in outcomes)
        records += len(theirs)
    return {"records": records, "writes": writes, "seconds": time.perf_counter() - started}


if __name__ == "__main__":
    cfg = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    print(json.dumps(asyncio.run(main(cfg, os.environ["RAW_CLIENT_SECRET"]))))
