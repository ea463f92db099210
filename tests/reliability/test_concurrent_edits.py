"""Concurrent edits of the same records on both systems: both converge, and there is no ping-pong
(the bridge writes at most once per human change, and nothing is written once they agree)."""

from __future__ import annotations

import asyncio

from tests.reliability.conftest import Rig, forms
from tests.reliability.helpers import converge, stream


def _bridge_writes(rig: Rig) -> int:
    client = rig.bridge_client
    return sum(1 for c in rig.cds_log.commits + rig.scm_log.commits if c.client_id == client)


@forms(short=(10, 150), long=(100, 3000))
async def test_both_sides_editing_the_same_records_converge_without_ping_pong(
    rig: Rig, size: tuple[int, int]
) -> None:
    records, updates = size
    # Conflicts are resolved by policy, by design, under this storm: they are recorded for admins but
    # do not trip the default alert rule (10 failures in 15 min), so the map keeps running.
    keys = [f"C{n:03d}" for n in range(records)]
    await stream(keys, 0, rig.person.scm_create, rig.person.scm_update, tag="base")
    await converge(rig.sandbox)
    before = _bridge_writes(rig)
    for key in keys:
        rig.person.cds_id(key)

    await asyncio.gather(
        stream(keys, updates, None, rig.person.cds_update, tag="cds", start=0, lanes=4),
        stream(keys, updates, None, rig.person.scm_update, tag="scm", start=1, lanes=4),
    )
    agreed = await converge(rig.sandbox, timeout=15)
    assert set(agreed) == set(keys)
    written = _bridge_writes(rig) - before
    assert 0 < written <= 2 * updates  # at most one write per human change
    await asyncio.sleep(1.0)  # a ping-pong would keep writing now
    assert _bridge_writes(rig) - before == written
    assert await converge(rig.sandbox, timeout=1) == agreed
    token = rig.bridge.settings.admin_token.get_secret_value()
    async with rig.http.get(
        f"{rig.bridge.url}/api/maps/ship_via", headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        assert (await resp.json())["state"] == "running"
