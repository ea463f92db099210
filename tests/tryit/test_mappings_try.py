"""``dualwrite mappings try``: a dry run of one map on one real record from each side, through the
live mapping path, writing nothing (the emulators' write logs prove it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.harness import Harness
from tests.tryit.conftest import dualwrite


def _writes(sandbox: Any) -> tuple[int, int]:
    return len(list(sandbox.dataverse.write_log)), len(list(sandbox.fno.write_log))


async def test_try_shows_payload_lookups_and_value_maps_and_writes_nothing(
    sandbox: Any, info_file: Path, person: Harness
) -> None:
    made = await person.scm_create(
        "Warehouses",
        {
            "WarehouseId": "21",
            "WarehouseName": "North",
            "OperationalSiteId": "1",
            "WarehouseType": "Quarantine",
        },
    )
    assert made.status in (200, 201), made.body
    before = _writes(sandbox)
    ran = await dualwrite("mappings", "try", "--sandbox", str(info_file), "--map", "warehouse", "--key", "21")
    assert ran.status == 0, ran.out + ran.err
    assert "F&O -> Dataverse" in ran.out and "not found on Dataverse" in ran.out
    assert '[warehouse_type]  "Quarantine" -> 192350001' in ran.out
    assert "the bridge would create it" in ran.out and "Dataverse would refuse: nothing" in ran.out
    site = await person.cds_find("msdyn_operationalsites", "msdyn_siteid", "1")
    assert site is not None
    assert f"/msdyn_operationalsites({site['msdyn_operationalsiteid']})" in ran.out  # the lookup resolved
    as_json = await dualwrite(
        "mappings", "try", "--sandbox", str(info_file), "--map", "warehouse", "--key", "21", "--json"
    )
    tried = json.loads(as_json.out)
    to_cds = next(d for d in tried["directions"] if d["source"] == "scm")
    assert to_cds["payload"]["msdyn_warehousetype"] == 192350001
    assert to_cds["payload"]["msdyn_description"] == "North"
    assert to_cds["target_action"] == "create" and to_cds["refused"] == []
    assert _writes(sandbox) == before  # a dry run: nothing written on either system


async def test_try_says_what_the_target_would_refuse(sandbox: Any, info_file: Path, person: Harness) -> None:
    # A site only F&O has: Dataverse has no row for the warehouse's lookup to point at.
    site = await person.scm_create("OperationalSites", {"SiteId": "9", "SiteName": "Only in F&O"})
    assert site.status in (200, 201), site.body
    made = await person.scm_create(
        "Warehouses", {"WarehouseId": "22", "WarehouseName": "South", "OperationalSiteId": "9"}
    )
    assert made.status in (200, 201), made.body
    before = _writes(sandbox)
    ran = await dualwrite("mappings", "try", "--sandbox", str(info_file), "--map", "warehouse", "--key", "22")
    assert ran.status == 1, ran.out + ran.err
    assert "Dataverse would refuse: lookup-missing" in ran.out and "'9'" in ran.out
    assert _writes(sandbox) == before


async def test_try_of_an_unknown_key_or_map(info_file: Path) -> None:
    ran = await dualwrite(
        "mappings", "try", "--sandbox", str(info_file), "--map", "ship_via", "--key", "None"
    )
    assert ran.status == 1 and ran.out.count("not found on") == 2
    ran = await dualwrite("mappings", "try", "--sandbox", str(info_file), "--map", "nothing", "--key", "X")
    assert ran.status == 2 and "no map 'nothing'" in ran.out
