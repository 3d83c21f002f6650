"""`berth --prometheus URL`: the console fed from a real Prometheus that scrapes two `berth metrics`
shards of a simulated fleet (no root needed). Both shards' nodes show; a node the local inventory
lacks is refused actions and engine reads with one line; a killed shard's nodes turn down and stale.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from promlab import BerthMetrics, PromServer, require_prometheus, wait_for  # noqa: E402

from console.config import load_inventory  # noqa: E402
from console.fleet.model import NodeState  # noqa: E402
from console.metrics.feed import PromFeed  # noqa: E402
from console.metrics.shard import shard_of  # noqa: E402
from console.sim.fleet import SimFleet  # noqa: E402
from console.ui import app as app_module  # noqa: E402


async def _until(pilot: object, condition: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.1)  # type: ignore[attr-defined]


def _local_inventory(sim: SimFleet, names: set[str], path: Path) -> Path:
    full = sim.inventory_path.read_text().split("[[node]]")
    head, nodes = full[0], full[1:]
    keep = [block for block in nodes if any(f'name = "{n}"' in block for n in names)]
    path.write_text(head + "".join(f"[[node]]{block}" for block in keep))
    return path


async def test_the_console_reads_both_shards_from_prometheus_and_refuses_what_it_cannot_reach(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_prometheus()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with SimFleet(3, 4, 1, in_process=True, flap=None) as sim:
        names = {f"sim-0{i}" for i in (1, 2, 3)}
        mine = {n for n in names if shard_of(n, 2) == 1}
        theirs = names - mine
        assert mine and theirs  # sim-01, sim-02 | sim-03
        shard1, shard2 = BerthMetrics(sim.inventory_path, "--shard", "1/2"), BerthMetrics(sim.inventory_path,
                                                                                         "--shard", "2/2")
        prom = None
        app = None
        try:
            prom = PromServer(tmp_path / "prom", [shard1.target, shard2.target])
            wait_for(lambda: len(prom.query("berth_node_cpu_usage_cores")) == 3, 60, "three nodes in Prometheus")
            # the operator's own inventory has only shard 1's nodes: it can act there and nowhere else
            local = load_inventory(_local_inventory(sim, mine, tmp_path / "local.toml"))
            args = argparse.Namespace(read_only=False, theme=None, noc=False, prometheus=prom.url)
            app = app_module.connect_app(args, local)
            assert isinstance(app.feed, PromFeed)
            app.feed.start()
            async with app.run_test(size=(160, 48)) as pilot:
                # (complete: the sim restarts a container now and then, and it has no CPU figure for a moment)
                await _until(pilot, lambda: app.snapshot is not None and {n.name for n in app.snapshot.nodes} == names
                             and all(n.state is NodeState.UP for n in app.snapshot.nodes) and app.snapshot.complete,
                             "both shards' nodes up, every running container with a figure")
                snap = app.snapshot
                assert len(snap.containers) == 12
                assert all(n.data_age is not None and n.data_age < 15 for n in snap.nodes)
                await pilot.pause(0.3)
                drawn = app.export_screenshot()  # the hosts pane as drawn: every node of both shards
                assert all(name in drawn for name in names)

                # Given a running container on a node only Prometheus knows, a restart is refused in one line
                far = next(c for c in snap.containers if c.node in theirs and c.state == "running")
                app.run_action_flow("restart", "restart", far)
                await _until(pilot, lambda: "refused" in app.last_activity, "the refusal")
                assert f"unknown node '{far.node}': not in this inventory" in app.last_activity
                assert "\n" not in app.last_activity
                # and its engine reads are refused by name, not attempted; a local node's answer
                with pytest.raises(Exception, match="not in the local inventory"):
                    await app.feed.inspect(far.node, far.id)
                near = next(c for c in snap.containers if c.node in mine)
                assert (await app.feed.inspect(near.node, near.id))["Id"] == near.id

                # When shard 2 is killed, its node turns down and stale, its containers last known, never 0
                shard2.kill()
                gone = next(iter(theirs))
                await _until(pilot, lambda: app.snapshot.node(gone).state is NodeState.DOWN, "shard 2's node down")
                node = app.snapshot.node(gone)
                assert not node.live and "stopped reporting" in (node.error or "")
                stale = [c for c in app.snapshot.containers if c.node == gone]
                assert stale and all(c.stale for c in stale)
                assert any(c.cpu_percent for c in stale)  # the last known figures, not zeros
                assert all(n.state is NodeState.UP for n in app.snapshot.nodes if n.name in mine)
                assert any(a.kind == "node-down" and a.subject == gone for a in app.alerts)
        finally:
            if app is not None and app.feed is not None:
                app.feed.stop()
            if prom is not None:
                prom.close()
            shard1.stop()
            shard2.stop()
