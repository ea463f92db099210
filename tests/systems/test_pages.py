"""Paged reads of a mapped table, per company and in key order, against the emulators over HTTPS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.core.events import System
from bridge.core.mapping import load_mappings
from bridge.core.pairing import Pairer
from bridge.systems.dataverse import DataverseClient
from bridge.systems.fno import FnoClient
from bridge.systems.pages import cds_pages, companies, scm_pages
from tests.systems.helpers import tokens_for

MAPS = load_mappings(Path(__file__).resolve().parents[2] / "mappings")
SHIP = MAPS.maps["ship_via"]


def _seed(sandbox: Any) -> None:
    company = sandbox.dataverse.rows("cdm_companies")[0]["cdm_companyid"]
    sandbox.fno.seed("LegalEntities", [{"LegalEntityId": "DEMF", "Name": "Contoso Germany"}])
    sandbox.dataverse.seed(
        "msdyn_shipvias",
        [
            {"msdyn_name": f"M{n:02d}", "msdyn_description": f"cds {n}", "_msdyn_company_value": company}
            for n in range(0, 25, 2)
        ],
    )
    sandbox.fno.seed(
        "DeliveryModesV2",
        [
            {"dataAreaId": "usmf", "ModeCode": f"M{n:02d}", "ModeDescription": f"scm {n}"}
            for n in range(0, 25, 3)
        ]
        + [{"dataAreaId": "demf", "ModeCode": "M01", "ModeDescription": "other company"}],
    )


async def test_both_sides_stream_in_key_order_and_pair_with_a_small_buffer(sandbox: Any) -> None:
    _seed(sandbox)
    info = sandbox.info
    cds = DataverseClient(info.cds_url, tokens_for(info, info.cds_scope), ca_file=info.ca_file)
    scm = FnoClient(info.scm_url, tokens_for(info, info.scm_scope), ca_file=info.ca_file)
    async with cds, scm:
        assert await companies(cds, scm) == ["DEMF", "USMF"]
        cds_read = [p async for p in cds_pages(cds, SHIP, "USMF", page_size=5)]
        scm_read = [p async for p in scm_pages(scm, SHIP, "usmf", page_size=4)]
        assert [len(p.records) for p in cds_read] == [5, 5, 3] and cds_read[-1].last
        assert [len(p.records) for p in scm_read] == [4, 4, 1]
        keys = [r.key for p in cds_read for r in p.records]
        assert keys == sorted(keys) and {r.company for p in scm_read for r in p.records} == {"USMF"}
        assert all(r.record_id and r.etag for p in cds_read for r in p.records)
        # read on after a key (a resumed run)
        after = [r.key async for p in scm_pages(scm, SHIP, "USMF", after="M12") for r in p.records]
        assert after == ["M15", "M18", "M21", "M24"]

        pairer = Pairer()
        pairs, most_waiting = [], 0
        for cds_page, scm_page in zip(cds_read, scm_read, strict=True):
            pairs += pairer.add(System.CDS, cds_page.records)
            pairs += pairer.add(System.SCM, scm_page.records)
            most_waiting = max(most_waiting, pairer.waiting)
        pairs += pairer.finish()
        both = sorted(p.key for p in pairs if p.only_on is None)
        assert both == ["M00", "M06", "M12", "M18", "M24"]
        assert len(pairs) == 13 + 9 - 5
        assert most_waiting < 13  # never the whole table
