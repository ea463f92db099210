"""Create, update and delete of each of the five entities, in both directions, over real HTTP.

Each human change must cause exactly one write by the bridge on the other side and none back on the
originator (echo suppression proven by counting writes)."""

from __future__ import annotations

import pytest

from tests.e2e.entities import ENTITIES, cds_key_body, spec_for, subset
from tests.e2e.harness import Harness, eventually


@pytest.mark.parametrize("entity", ENTITIES)
async def test_dataverse_to_fno(env: Harness, entity: str) -> None:
    spec = await spec_for(env, entity)
    await env.settle()
    key = "K" + entity[:4].upper()
    before_scm, before_cds = (
        env.writes("scm", entity_set=spec.scm_set),
        env.writes("cds", entity_set=spec.cds_set),
    )

    created = await env.cds_create(spec.cds_set, {**cds_key_body(spec, key), **spec.cds_new})
    assert created.status == 201, created.body
    record_id = created.body[spec.cds_id]
    # Synchronous step: the create returned only after the F&O write.
    row = await env.scm_find(spec.scm_set, spec.scm_key, key)
    assert subset(row, spec.scm_after_cds_new), row

    changed = await env.cds_update(spec.cds_set, record_id, spec.cds_change)
    assert changed.status == 204, changed.body
    row = await env.scm_find(spec.scm_set, spec.scm_key, key)
    assert subset(row, spec.scm_after_cds_change), row

    deleted = await env.cds_delete(spec.cds_set, record_id)
    assert deleted.status == 204, deleted.body
    assert await env.scm_find(spec.scm_set, spec.scm_key, key) is None

    await env.settle()
    assert env.writes("scm", entity_set=spec.scm_set) - before_scm == 3  # one write per human change
    assert env.writes("cds", entity_set=spec.cds_set) - before_cds == 0  # nothing bounced back


@pytest.mark.parametrize("entity", ENTITIES)
async def test_fno_to_dataverse(env: Harness, entity: str) -> None:
    spec = await spec_for(env, entity)
    await env.settle()
    key = "F" + entity[:4].upper()
    before_scm, before_cds = (
        env.writes("scm", entity_set=spec.scm_set),
        env.writes("cds", entity_set=spec.cds_set),
    )

    created = await env.scm_create(spec.scm_set, {spec.scm_key: key, **spec.scm_new})
    assert created.status == 201, created.body
    row = await eventually(
        lambda: _found(env, spec, key, spec.cds_after_scm_new), what=f"{entity} {key} created in Dataverse"
    )
    assert row[spec.cds_key] == key

    changed = await env.scm_update(spec.scm_set, spec.scm_key, key, spec.scm_change)
    assert changed.status == 204, changed.body
    await eventually(lambda: _found(env, spec, key, spec.cds_after_scm_change), what="update in Dataverse")

    deleted = await env.scm_delete(spec.scm_set, spec.scm_key, key)
    assert deleted.status == 204, deleted.body

    async def gone() -> bool:
        return await env.cds_find(spec.cds_set, spec.cds_key, key) is None

    await eventually(gone, what="delete in Dataverse")
    await env.settle()
    assert env.writes("cds", entity_set=spec.cds_set) - before_cds == 3
    assert env.writes("scm", entity_set=spec.scm_set) - before_scm == 0


async def _found(env: Harness, spec, key: str, expected: dict) -> dict | None:  # type: ignore[no-untyped-def,type-arg]
    row = await env.cds_find(spec.cds_set, spec.cds_key, key)
    return row if subset(row, expected) else None
