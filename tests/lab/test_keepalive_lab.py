"""The keep-alive pool against a real dockerd: the start-up inspects of a node's containers ride
on a few kept-alive connections (dockerd's HTTP/1.1 server keeps them), not one each."""

from __future__ import annotations

from pathlib import Path

import pytest
from dockerlab import Lab

from console.config import load_inventory
from console.engine.keepalive import POOL_SIZE
from console.fleet.poller import Fleet


@pytest.mark.lab
async def test_inspects_of_many_containers_reuse_a_few_connections(scratch_lab: Lab, tmp_path: Path) -> None:
    node = scratch_lab.nodes[0]
    ids = [node.run_container(f"ka-{i}") for i in range(3 * POOL_SIZE)]
    inv = load_inventory(scratch_lab.write_inventory(tmp_path / "inventory.toml"))
    async with Fleet(inv) as fleet:
        snap = await fleet.wait_complete(60)
        w = next(w for w in fleet.watchers if w.name == node.name)
        assert all(w.containers[cid].inspected for cid in ids)
        # what only an inspect tells: the container's name and its start time
        shown = {c.id: c for c in snap.containers}
        assert all(shown[cid].name == f"ka-{i}" and shown[cid].started_at for i, cid in enumerate(ids))
        pool = w.client._pool
        assert pool is not None and 1 <= pool.connections_made <= POOL_SIZE < len(ids)
