"""What is shown must be true, against real dockerd: a down node's figures, state after an action,
an incomplete stats round, one daemon behind two names, badges of containers that ran before."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from dockerlab import BURN_COMMAND, Lab

from console.config import load_inventory
from console.fleet.model import FleetSnapshot, NodeState
from console.fleet.poller import Fleet
from console.status import render_tables, to_json

pytestmark = pytest.mark.lab


async def wait_for(fleet: Fleet, predicate: Callable[[FleetSnapshot], bool], timeout: float,
                   what: str) -> FleetSnapshot:
    deadline = time.monotonic() + timeout
    snap = fleet.publish()
    while time.monotonic() < deadline:
        snap = fleet.publish()
        if predicate(snap):
            return snap
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout}s; nodes "
                         f"{[(n.name, n.state.value, n.error) for n in snap.nodes]}")


async def test_a_down_nodes_containers_are_last_known_and_out_of_the_live_totals(scratch_lab: Lab,
                                                                                tmp_path: Path) -> None:
    """Given two nodes, one running a busy and an idle container of tenant acme, when its dockerd is
    killed (its own pid), then its containers are `running?` (stale, last known figures kept for JSON),
    the fleet's running count leaves them out and counts them apart, and tables show `?`."""
    live, victim = scratch_lab.nodes
    victim.run_container("acme-burn", BURN_COMMAND, tenant="acme", nano_cpus=500_000_000)
    victim.run_container("acme-idle", tenant="acme")
    live.run_container("acme-live", tenant="acme")
    inv = load_inventory(scratch_lab.write_inventory(tmp_path / "inventory.toml"))
    async with Fleet(inv, publish_interval=0.1) as fleet:
        before = await fleet.wait_complete(30)
        assert before.complete and before.running == 3
        burn = next(c for c in before.containers if c.name == "acme-burn")
        assert burn.cpu_percent is not None and burn.cpu_percent > 10
        await asyncio.to_thread(victim.kill)
        snap = await wait_for(fleet, lambda s: s.node(victim.name).state is NodeState.DOWN, 20, "victim down")
    node = snap.node(victim.name)
    assert not node.live and node.data_age is not None
    gone = [c for c in snap.containers if c.node == victim.name]
    assert {c.name for c in gone} == {"acme-burn", "acme-idle"}
    assert all(c.stale and c.state == "running" for c in gone)
    assert snap.running == 1 and snap.live_containers == 1 and snap.stale_containers == 2
    acme = snap.tenant("acme")
    assert (acme.running, acme.containers, acme.stale_containers) == (1, 1, 2)
    assert acme.nodes == (live.name,)

    doc = to_json(snap)
    jnode = next(n for n in doc["nodes"] if n["name"] == victim.name)
    assert jnode["stale"] is True and jnode["state"] == "down" and jnode["data_age"] is not None
    assert jnode["running"] == 2  # the last known, marked stale
    jburn = next(c for c in doc["containers"] if c["name"] == "acme-burn")
    assert jburn["stale"] is True and jburn["state"] == "running" and jburn["cpu_percent"] > 10
    assert jburn["data_age"] >= jnode["data_age"] - 0.5
    assert next(t for t in doc["tenants"] if t["name"] == "acme")["stale_containers"] == 2
    assert doc["stale_containers"] == 2

    tables = render_tables(snap)
    row = next(line for line in tables.splitlines() if line.startswith(victim.name))
    assert "?/2" in row and f"?/{node.cpus}" in row and "0.00/" not in row
    burn_row = next(line for line in tables.splitlines() if line.startswith("acme-burn"))
    assert "running?" in burn_row.split() and "?" in burn_row.split()
