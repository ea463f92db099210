"""Both emulators pre-filled behind the bridge's back (seeded: no notifications) for the initial sync
tests: all five maps, two companies, records on both sides (equal and conflicting), on one side only,
and references (sites, categories, refilling warehouses, parent assets) on either side."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from bridge.core.compare import FieldSelection, plan_record
from bridge.core.events import System
from bridge.core.mapping import MappingSet
from bridge.core.pairing import Pairer, RecordPair, SideRecord

COMPANIES = ("USMF", "DEMF")
NS = uuid.UUID("6b7f2a8e-3c1d-4f5e-9a0b-1c2d3e4f5a6b")


def guid(*parts: str) -> str:
    return str(uuid.uuid5(NS, "/".join(parts)))


@dataclass
class Filled:
    """What was seeded: per map, company and key, each side's values of the one field the tests
    follow ("what" on Dataverse / F&O), so a test can say which value must win."""

    expected: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    count: int = 0


def company_ids(sandbox: Any) -> dict[str, str]:
    rows = sandbox.dataverse.rows("cdm_companies")
    return {r["cdm_companycode"]: r["cdm_companyid"] for r in rows}


def add_second_company(sandbox: Any) -> dict[str, str]:
    """DEMF on both systems, with its sites (F&O's and Dataverse's, as the referenced table no map
    covers must be on both already)."""
    demf = guid("company", "DEMF")
    sandbox.dataverse.seed(
        "cdm_companies", [{"cdm_companyid": demf, "cdm_companycode": "DEMF", "cdm_name": "Contoso Germany"}]
    )
    sandbox.dataverse.seed(
        "msdyn_operationalsites",
        [
            {
                "msdyn_operationalsiteid": guid("site", "DEMF", str(n)),
                "msdyn_siteid": str(n),
                "msdyn_name": f"Site {n}",
                "_msdyn_company_value": demf,
            }
            for n in range(1, 4)
        ],
    )
    sandbox.fno.seed("LegalEntities", [{"LegalEntityId": "DEMF", "Name": "Contoso Germany"}])
    sandbox.fno.seed("OperationalSites", [{"dataAreaId": "demf", "SiteId": str(n)} for n in range(1, 4)])
    return company_ids(sandbox)


def site_guid(sandbox: Any, company_id: str, site: str) -> str:
    for row in sandbox.dataverse.rows("msdyn_operationalsites"):
        if row["_msdyn_company_value"] == company_id and row["msdyn_siteid"] == site:
            return str(row["msdyn_operationalsiteid"])
    raise AssertionError(f"no site {site}")


@dataclass
class _Rows:
    """One company's seeded rows, per map and side."""

    company_id: str
    area: str
    filled: Filled
    cds: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    scm: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def both(
        self, name: str, key: str, cds_row: dict[str, Any] | None, scm_row: dict[str, Any] | None
    ) -> None:
        if cds_row is not None:
            self.cds.setdefault(name, []).append({**cds_row, "_msdyn_company_value": self.company_id})
        if scm_row is not None:
            self.scm.setdefault(name, []).append({**scm_row, "dataAreaId": self.area})
        self.filled.count += 1


def fill(sandbox: Any, *, per_kind: int = 2) -> Filled:
    """For each company: ``per_kind`` records of each kind (both-equal, both-different, cds-only,
    scm-only) per map, with references; returns what each side holds."""
    ids = add_second_company(sandbox)
    filled = Filled()
    for code in COMPANIES:
        cid = ids[code]
        rows = _Rows(cid, code.lower(), filled)
        both = rows.both

        kinds = [(f"E{n}", "same") for n in range(per_kind)] + [(f"D{n}", "diff") for n in range(per_kind)]
        kinds += [(f"C{n}", "cds") for n in range(per_kind)] + [(f"S{n}", "scm") for n in range(per_kind)]
        for key, kind in kinds:
            cv, sv = f"{code} {key} cds", (f"{code} {key} cds" if kind == "same" else f"{code} {key} scm")
            on_cds, on_scm = kind != "scm", kind != "cds"
            filled.expected[("ship_via", code, f"V{key}")] = {
                "cds": cv if on_cds else None,
                "scm": sv if on_scm else None,
            }
            both(
                "ship_via",
                f"V{key}",
                {"msdyn_name": f"V{key}", "msdyn_description": cv} if on_cds else None,
                {"ModeCode": f"V{key}", "ModeDescription": sv} if on_scm else None,
            )
            days_c, days_s = 30, 30 if kind == "same" else 45
            filled.expected[("payment_terms", code, f"P{key}")] = {
                "cds": days_c if on_cds else None,
                "scm": days_s if on_scm else None,
            }
            both(
                "payment_terms",
                f"P{key}",
                {
                    "msdyn_name": f"P{key}",
                    "msdyn_description": cv,
                    "msdyn_days": days_c,
                    "msdyn_paymentmethodtype": 192350000,
                }
                if on_cds
                else None,
                {"Name": f"P{key}", "Description": cv, "NumberOfDays": days_s, "PaymentMethodType": "Net"}
                if on_scm
                else None,
            )
            filled.expected[("customer_asset_category", code, f"T{key}")] = {
                "cds": cv if on_cds else None,
                "scm": sv if on_scm else None,
            }
            cat_id = guid("category", code, key)
            both(
                "customer_asset_category",
                f"T{key}",
                {
                    "msdyn_customerassetcategoryid": cat_id,
                    "msdyn_maintenanceassettypeid": f"T{key}",
                    "msdyn_name": cv,
                }
                if on_cds
                else None,
                {"MaintenanceAssetTypeId": f"T{key}", "Name": sv} if on_scm else None,
            )
            # Warehouses: W<key>P the parent, W<key> refilled from it (a self-reference on that side).
            site = site_guid(sandbox, cid, "1")
            for wkey, parent in ((f"W{key}P", None), (f"W{key}", f"W{key}P")):
                filled.expected[("warehouse", code, wkey)] = {
                    "cds": cv if on_cds else None,
                    "scm": sv if on_scm else None,
                }
                both(
                    "warehouse",
                    wkey,
                    {
                        "msdyn_warehouseid": guid("warehouse", code, wkey),
                        "msdyn_warehouseidentifier": wkey,
                        "msdyn_name": wkey,
                        "msdyn_description": cv,
                        "_msdyn_operationalsite_value": site,
                        **(
                            {"_msdyn_mainrefillingwarehouse_value": guid("warehouse", code, parent)}
                            if parent
                            else {}
                        ),
                    }
                    if on_cds
                    else None,
                    {
                        "WarehouseId": wkey,
                        "WarehouseName": sv,
                        "OperationalSiteId": "1",
                        **({"MainRefillingWarehouseId": parent} if parent else {}),
                    }
                    if on_scm
                    else None,
                )
            # Assets: A<key>P the parent, A<key> under it, both of category T<key>.
            for akey, parent in ((f"A{key}P", None), (f"A{key}", f"A{key}P")):
                filled.expected[("customer_asset", code, akey)] = {
                    "cds": cv if on_cds else None,
                    "scm": sv if on_scm else None,
                }
                both(
                    "customer_asset",
                    akey,
                    {
                        "msdyn_customerassetid": guid("asset", code, akey),
                        "msdyn_maintenanceassetid": akey,
                        "msdyn_name": cv,
                        "_msdyn_customerassetcategory_value": cat_id,
                        **({"_msdyn_parentasset_value": guid("asset", code, parent)} if parent else {}),
                    }
                    if on_cds
                    else None,
                    {
                        "MaintenanceAssetId": akey,
                        "Name": sv,
                        "MaintenanceAssetTypeId": f"T{key}",
                        **({"ParentMaintenanceAssetId": parent} if parent else {}),
                    }
                    if on_scm
                    else None,
                )
        for name in ("ship_via", "payment_terms", "customer_asset_category", "warehouse", "customer_asset"):
            if name in rows.cds:
                sandbox.dataverse.seed(CDS_SETS[name], rows.cds[name])
            if name in rows.scm:
                sandbox.fno.seed(SCM_SETS[name], rows.scm[name])
    return filled


CDS_SETS = {
    "ship_via": "msdyn_shipvias",
    "payment_terms": "msdyn_paymentterms",
    "customer_asset_category": "msdyn_customerassetcategories",
    "warehouse": "msdyn_warehouses",
    "customer_asset": "msdyn_customerassets",
}
SCM_SETS = {
    "ship_via": "DeliveryModesV2",
    "payment_terms": "PaymentTerms",
    "customer_asset_category": "AssetMaintenanceAssetTypes",
    "warehouse": "Warehouses",
    "customer_asset": "AssetMaintenanceAssets",
}
FOLLOWED = {  # the field each map's expectations follow: (Dataverse column, F&O property)
    "ship_via": ("msdyn_description", "ModeDescription"),
    "payment_terms": ("msdyn_days", "NumberOfDays"),
    "customer_asset_category": ("msdyn_name", "Name"),
    "warehouse": ("msdyn_description", "WarehouseName"),
    "customer_asset": ("msdyn_name", "Name"),
}


def side_rows(sandbox: Any, mappings: MappingSet, name: str) -> dict[System, list[SideRecord]]:
    """Each side's committed rows of a map, as sync runs read them (read form, per company)."""
    emap = mappings.maps[name]
    codes = {v: k for k, v in company_ids(sandbox).items()}
    out: dict[System, list[SideRecord]] = {System.CDS: [], System.SCM: []}
    for row in sandbox.dataverse.rows(emap.cds.entity_set):
        code = codes[row["_msdyn_company_value"]]
        out[System.CDS].append(
            SideRecord(code, str(row[emap.cds.key_field]), dict(row), row[emap.cds.primary_id])
        )
    for row in sandbox.fno.rows(emap.scm.entity_set):
        out[System.SCM].append(SideRecord(row["dataAreaId"].upper(), str(row[emap.scm.key_field]), dict(row)))
    return out


def still_different(sandbox: Any, mappings: MappingSet, name: str) -> list[str]:
    """Records of a map whose two sides still differ (or miss a side), as the core compares them;
    lookups resolved from the emulators' own rows."""
    emap = mappings.maps[name]
    rows = side_rows(sandbox, mappings, name)
    pairer = Pairer()
    pairs: list[RecordPair] = pairer.add(System.CDS, rows[System.CDS]) + pairer.add(
        System.SCM, rows[System.SCM]
    )
    pairs += pairer.finish()
    keys_by_guid = _keys_by_guid(sandbox, mappings)
    guid_by_key = {(t, c, k): g for (t, g), (c, k) in keys_by_guid.items()}
    out = []
    for pair in pairs:
        if pair.only_on is not None:
            out.append(f"{pair.company}/{pair.key}: only on {pair.only_on.value}")
            continue
        resolved: dict[System, dict[str, str | None]] = {System.CDS: {}, System.SCM: {}}
        for spec in emap.lookups_from(System.CDS):
            value = spec.value(pair.cds.image) if pair.cds else None
            if value is not None:
                resolved[System.CDS][spec.name] = keys_by_guid.get(
                    (spec.cds_entity_set, value), (None, None)
                )[1]
        for spec in emap.lookups_from(System.SCM):
            value = spec.value(pair.scm.image) if pair.scm else None
            if value is not None:
                resolved[System.SCM][spec.name] = guid_by_key.get((spec.cds_entity_set, pair.company, value))
        plan = plan_record(emap, pair, System.CDS, resolved, FieldSelection.ALL)
        if not plan.unchanged:
            out.append(f"{pair.company}/{pair.key}: {[(w.target.value, w.columns) for w in plan.writes]}")
    return out


def _keys_by_guid(sandbox: Any, mappings: MappingSet) -> dict[tuple[str, str], tuple[str, str]]:
    codes = {v: k for k, v in company_ids(sandbox).items()}
    tables = {m.cds.entity_set: (m.cds.primary_id, m.cds.key_field) for m in mappings}
    tables["msdyn_operationalsites"] = ("msdyn_operationalsiteid", "msdyn_siteid")
    out = {}
    for table, (pk, key) in tables.items():
        for row in sandbox.dataverse.rows(table):
            out[(table, str(row[pk]))] = (codes.get(row.get("_msdyn_company_value"), ""), str(row[key]))
    return out
