"""The fleet core against real dockerd nodes: measured values, not just presence."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from dockerlab import BUSYBOX_REF, InventoryNode, Lab

from console.config import load_inventory
from console.fleet.model import FleetSnapshot, NodeState
from console.fleet.poller import Fleet, NodeWatcher

MiB = 2**20
pytestmark = pytest.mark.lab


def berth_status_json(inventory: Path, *extra: str) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, "-m", "console", "status", "--json", "--inventory", str(inventory),
                           "--timeout", "30", *extra], capture_output=True, text=True, timeout=120)
    assert proc.stderr.strip() == "" or proc.returncode != 0, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture(scope="module")
def status(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict]:
    inventory = lab.write_inventory(tmp_path_factory.mktemp("inv") / "inventory.toml")
    with open(inventory, "a") as f:
        f.write('\n[tenant.acme]\ncpu = 1\nmemory = "1GiB"\n')
    return berth_status_json(inventory)


def test_every_lab_node_is_up_and_exit_status_is_0(status: tuple[int, dict], lab: Lab) -> None:
    code, doc = status
    assert code == 0
    assert sorted(n["name"] for n in doc["nodes"]) == sorted(n.name for n in lab.nodes)
    assert all(n["state"] == "up" and n["error"] is None for n in doc["nodes"])
    assert set(doc) >= {"nodes", "containers", "tenants"}


def test_cpu_bound_container_capped_at_half_a_core_reads_35_to_65_percent(status: tuple[int, dict]) -> None:
    burn = next(c for c in status[1]["containers"] if c["name"] == "acme-burn")
    assert burn["state"] == "running" and burn["tenant"] == "acme"
    assert 35 <= burn["cpu_percent"] <= 65
    assert burn["cpu_limit"] == pytest.approx(0.5)


def test_memory_holder_reads_at_least_38_mib(status: tuple[int, dict]) -> None:
    mem = next(c for c in status[1]["containers"] if c["name"] == "globex-mem")
    assert mem["mem_used"] >= 38 * MiB
    assert mem["mem_limit"] == 256 * MiB


def test_containers_match_the_engine_api(status: tuple[int, dict], lab: Lab) -> None:
    got = {(c["node"], c["id"]): c for c in status[1]["containers"]}
    for node in lab.nodes:
        for real in node.client().api.containers(all=True):
            mine = got[(node.name, real["Id"])]
            assert mine["name"] == real["Names"][0].lstrip("/")
            assert mine["state"] == real["State"]
            assert mine["tenant"] == real["Labels"].get("tenant", "unassigned")
    assert next(c for c in status[1]["containers"] if c["name"] == "initech-batch")["state"] == "exited"


def test_tenant_sums_equal_the_sum_of_their_containers(status: tuple[int, dict]) -> None:
    doc = status[1]
    for tenant in doc["tenants"]:
        mine = [c for c in doc["containers"] if c["tenant"] == tenant["name"]]
        running = [c for c in mine if c["state"] == "running"]
        assert tenant["containers"] == len(mine)
        assert tenant["running"] == len(running)
        assert tenant["cpu_cores_used"] == pytest.approx(sum(c["cpu_percent"] or 0 for c in running) / 100, abs=1e-3)
        assert tenant["mem_used"] == sum(c["mem_used"] or 0 for c in running)
        assert sorted(tenant["nodes"]) == sorted({c["node"] for c in running})
    names = {t["name"] for t in doc["tenants"]}
    assert {"acme", "globex", "initech", "unassigned"} <= names
    acme = next(t for t in doc["tenants"] if t["name"] == "acme")
    assert acme["cpu_quota"] == 1 and acme["mem_quota"] == 2**30


def test_densities_match_info(status: tuple[int, dict], lab: Lab) -> None:
    doc = status[1]
    for node in doc["nodes"]:
        info = lab.node(node["name"]).client().info()
        assert node["cpus"] == info["NCPU"] and node["mem_total"] == info["MemTotal"]
        running = [c for c in doc["containers"] if c["node"] == node["name"] and c["state"] == "running"]
        used = sum(c["cpu_percent"] or 0 for c in running) / 100
        assert node["running"] == info["ContainersRunning"] == len(running)
        assert node["cpu_cores_used"] == pytest.approx(used, abs=1e-3)
        assert node["cpu_density"] == pytest.approx(used / info["NCPU"], abs=1e-3)
        assert node["mem_density"] == pytest.approx(node["mem_used"] / info["MemTotal"], abs=1e-4)
        limits = sum(c["mem_limit"] or 0 for c in running)
        assert node["mem_committed"] == pytest.approx(limits / info["MemTotal"], abs=1e-4)
        assert node["mem_unlimited"] == sum(1 for c in running if not c["mem_limit"])
        assert node["engine_version"] == info["ServerVersion"]


def test_local_nodes_carry_host_load_and_berth_reports_its_own_cost(status: tuple[int, dict]) -> None:
    doc = status[1]
    for node in doc["nodes"]:  # lab nodes are unix sockets on this machine
        assert node["host_mem_used"] > 0
        assert node["host_cpu_cores_used"] >= node["cpu_cores_used"] * 0.5
    assert doc["observer"]["rss"] > 10 * MiB


def test_status_with_an_unreachable_node_exits_1_and_prints_the_rest(lab: Lab, tmp_path: Path) -> None:
    inventory = lab.write_inventory(tmp_path / "inv.toml", extra_nodes=[
        InventoryNode("ghost", f"unix://{tmp_path}/ghost.sock")])
    code, doc = berth_status_json(inventory)
    assert code == 1
    states = {n["name"]: n["state"] for n in doc["nodes"]}
    assert states.pop("ghost") == "down"
    assert set(states.values()) == {"up"}
    assert any(c["name"] == "acme-burn" for c in doc["containers"])


# -- live behaviour with an in-process Fleet --------------------------------


async def wait_for(fleet: Fleet, predicate: Callable[[FleetSnapshot], bool], timeout: float) -> FleetSnapshot:
    """Poll published snapshots until predicate holds; fail with the last snapshot's node states."""
    deadline = time.monotonic() + timeout
    snap = fleet.publish()
    while time.monotonic() < deadline:
        snap = fleet.publish()
        if predicate(snap):
            return snap
        await asyncio.sleep(0.1)
    states = {n.name: (n.state.value, n.error) for n in snap.nodes}
    raise AssertionError(f"condition not met within {timeout}s; nodes: {states}")


def idle_sample_gap(fleet: Fleet, node: str, margin: float = 3.0) -> float:
    """The longest legitimate gap between two samples of an idle container on `node`, from the
    product's cadence (console/fleet/poller.py): the sample that drops it to the idle cadence
    (after IDLE_SAMPLES idle ones) schedules the first one-shot `idle_interval * (1 + spread)`
    later, spread in [0, 1); the idle loop notices on its next 1 s scan (bounded here by the
    heartbeat) and the answer is bounded by the node's call timeout; `margin` for a loaded box
    (dockerd's <= 1 s collection, the pump's 0.25 s tick). A node that stops sampling still fails."""
    w = next(w for w in fleet.watchers if w.name == node)
    return 2 * max(w.idle_interval, 1.0) + w.heartbeat + w.cfg.timeout + margin


def run_idle(lab: Lab, node: int, name: str) -> str:
    client = lab.nodes[node].client()
    c = client.containers.run(BUSYBOX_REF, ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"],
                              name=name, detach=True, labels={"tenant": "t"})
    return c.id


async def test_killed_node_goes_down_fast_others_keep_updating_and_it_comes_back(scratch_lab: Lab,
                                                                              tmp_path: Path) -> None:
    a, b = scratch_lab.nodes
    run_idle(scratch_lab, 0, "on-a")
    b_id = run_idle(scratch_lab, 1, "on-b")
    inv = load_inventory(scratch_lab.write_inventory(tmp_path / "inv.toml"))
    async with Fleet(inv) as fleet:
        await fleet.wait_complete(20)
        a.kill()
        killed = time.monotonic()
        snap = await wait_for(fleet, lambda s: s.node(a.name).state is NodeState.DOWN, timeout=5)
        detect = time.monotonic() - killed
        assert snap.node(a.name).error
        # b keeps sampling: its container's sample time moves on after a went down, at full rate or,
        # should b's idle container have dropped to the idle cadence by then, at that cadence
        before = next(c for c in snap.containers if c.id == b_id).sampled_at
        snap = await wait_for(fleet, lambda s: (next(c for c in s.containers if c.id == b_id).sampled_at or 0)
                              > (before or 0) + 1.5, timeout=1.5 + idle_sample_gap(fleet, b.name))
        assert snap.node(b.name).state is NodeState.UP
        # the daemon returns (without live-restore it stops its containers); Berth reconnects by itself
        a.start()
        real = a.client().containers.get("on-a").status
        await wait_for(fleet, lambda s: s.node(a.name).state is NodeState.UP
                       and any(c.name == "on-a" and c.state == real for c in s.containers), timeout=20)
        # and streams stats again for what runs there now
        if real != "running":
            await asyncio.to_thread(a.client().containers.get("on-a").start)
        await wait_for(fleet, lambda s: any(c.name == "on-a" and c.running and c.cpu_percent is not None
                                            for c in s.containers), timeout=10)
    print(f"\nkilled node marked down after {detect:.2f}s")


async def test_docker_stop_shows_exited_from_the_event_stream_before_any_list_poll(scratch_lab: Lab,
                                                                                  tmp_path: Path) -> None:
    cid = run_idle(scratch_lab, 0, "stopme")
    inv = load_inventory(scratch_lab.write_inventory(tmp_path / "inv.toml"))
    # A list cadence of an hour: only the event stream can tell us.
    fleet = Fleet(inv, watcher_factory=partial(NodeWatcher, list_interval=3600))
    async with fleet:
        await wait_for(fleet, lambda s: any(c.id == cid and c.running for c in s.containers), timeout=20)
        await asyncio.to_thread(subprocess.run, ["docker", "-H", scratch_lab.nodes[0].url, "stop", "-t", "5", cid],
                                check=True, capture_output=True)
        snap = await wait_for(fleet, lambda s: any(c.id == cid and c.state == "exited" for c in s.containers),
                              timeout=5)
        c = next(c for c in snap.containers if c.id == cid)
        assert c.cpu_percent is None and c.mem_used is None


async def test_container_started_later_gets_stats_stream(scratch_lab: Lab, tmp_path: Path) -> None:
    inv = load_inventory(scratch_lab.write_inventory(tmp_path / "inv.toml"))
    fleet = Fleet(inv, watcher_factory=partial(NodeWatcher, list_interval=3600))
    async with fleet:
        await fleet.wait_complete(20)
        client = scratch_lab.nodes[1].client()
        c = await asyncio.to_thread(client.containers.run, BUSYBOX_REF, ["sh", "-c", "while :; do :; done"],
                                    name="late-burn", detach=True, nano_cpus=300_000_000)
        snap = await wait_for(fleet, lambda s: any(x.id == c.id and (x.cpu_percent or 0) > 15
                                                   for x in s.containers), timeout=10)
        got = next(x for x in snap.containers if x.id == c.id)
        assert got.cpu_limit == pytest.approx(0.3)
        assert got.cpu_percent is not None and got.cpu_percent < 45
        # history keeps a point a second for the container
        await asyncio.sleep(2.2)
        assert len(fleet.history.cpu(c.id)) >= 2
