"""The demo fleet holds the incident it promises, as Berth's own poller sees it through the Engine API."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from console.config import load_inventory
from console.fleet.model import FleetSnapshot, NodeState
from console.fleet.poller import Fleet
from console.sim import model
from console.sim.fleet import demo_fleet, start_demo_fleet


def test_the_demo_layout_has_every_character() -> None:
    fleet = demo_fleet()
    layout = fleet.layout
    assert 5 <= len(layout.nodes) <= 8
    assert all(20 <= len(n.containers) <= 40 for n in layout.nodes)
    down = [n for n in layout.nodes if n.flap is not None]
    assert len(down) == 1 and down[0].flap is not None and down[0].flap.down == float("inf")
    assert down[0].name != layout.hot_node
    for role in (model.HOT, model.CRASHLOOP, model.OOMED, model.LEAK):
        assert layout.containers(role), f"no {role} container in the demo"
    assert {n.cgroup for n in layout.nodes} == {"1", "2"}


async def _snapshot_when(fleet: Fleet, ready, timeout: float) -> FleetSnapshot:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    snap = fleet.publish()
    while not ready(snap) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        snap = fleet.publish()
    return snap


async def test_berth_sees_the_demo_incident(tmp_path: Path) -> None:
    inventory_path, close = await asyncio.to_thread(start_demo_fleet, tmp_path / "demo", down_after=6.0)
    try:
        inventory = load_inventory(inventory_path)
        layout_fleet = demo_fleet()  # same seed: the same layout, to know where to look
        layout = layout_fleet.layout
        down_node = next(n.name for n in layout.nodes if n.flap is not None)
        async with Fleet(inventory) as fleet:
            snap = await fleet.wait_complete(timeout=20)
            assert all(n.state is NodeState.UP for n in snap.nodes if n.name != down_node), [
                (n.name, n.error) for n in snap.nodes]

            # One hot tenant eating one node.
            hot = snap.node(layout.hot_node)
            assert hot is not None and hot.density.cpu_density > 0.9
            others = [n for n in snap.nodes if n.name != layout.hot_node]
            assert max(n.density.cpu_density for n in others) < 0.8
            top = max(snap.containers_on(layout.hot_node), key=lambda c: c.cpu_percent or 0)
            assert top.tenant == layout.hot_tenant

            # A tenant over its quota (the hot one), and the others within theirs.
            over = [t.name for t in snap.tenants if (t.cpu_quota_use or 0) > 1.0]
            assert over == [layout.hot_tenant]

            # A restart loop and an OOM-killed container.
            loop_name = layout.containers(model.CRASHLOOP)[0][1].name
            looping = next(c for c in snap.containers if c.name == loop_name)
            assert looping.restart_count >= 30
            oomed = layout.containers(model.OOMED)[0][1].name
            killed = next(c for c in snap.containers if c.name == oomed)
            assert killed.oom_killed and killed.exit_code == 137 and killed.state == "exited"

            # One node down: it answered at first (Berth knows its containers), then stopped.
            snap = await _snapshot_when(fleet, lambda s: s.node(down_node).state is NodeState.DOWN, 20)
            gone = snap.node(down_node)
            assert gone is not None and gone.state is NodeState.DOWN, gone
            assert "refused" in (gone.error or "")
            assert snap.containers_on(down_node)  # Berth still shows what it knew, marked stale
            # the last known, marked stale: shown as unknown and kept out of the live totals
            assert all(c.stale for c in snap.containers_on(down_node))
            assert snap.stale_containers == len(snap.containers_on(down_node))
            assert snap.running == sum(1 for c in snap.containers if c.running and c.node != down_node)
    finally:
        await asyncio.to_thread(close)
    assert not (tmp_path / "demo" / down_node / "docker.sock").exists()
