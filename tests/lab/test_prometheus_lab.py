"""Berth through a real Prometheus: Debian's server scrapes `berth metrics` on real dockerd nodes,
and what PromQL answers agrees with `berth status --json` from the same nodes; two shards feed
one Prometheus, and a killed shard's nodes turn absent (stale), not zero."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dockerlab import BURN_COMMAND, Lab
from promlab import ROOT, BerthMetrics, PromServer, require_prometheus, wait_for

from console.metrics.shard import shard_of

pytestmark = pytest.mark.lab


@pytest.fixture(autouse=True)
def _prometheus_installed() -> None:
    require_prometheus()


def status_json(inventory: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "console", "status", "--json", "--inventory", str(inventory)],
                          check=False, capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_promql_agrees_with_status_json_and_a_half_core_burner_reads_half_a_core(scratch_lab: Lab,
                                                                                 tmp_path: Path) -> None:
    """Given two nodes, one running a busy loop limited to 0.5 CPU (acme) and an idle container with a
    64 MiB limit, the other an idle globex container limited to 0.25 CPU, when `berth metrics` serves
    them and Prometheus scrapes every second, then PromQL reads the burner at 0.35-0.65 cores, and
    nodes, containers, limits and tenants agree with `berth status --json` (CPU within sampling error)."""
    a, b = scratch_lab.nodes
    a.run_container("burn", BURN_COMMAND, tenant="acme", nano_cpus=500_000_000)
    a.run_container("idle-a", tenant="acme", mem_limit="64m")
    b.run_container("idle-b", tenant="globex", nano_cpus=250_000_000)
    inv = scratch_lab.write_inventory(tmp_path / "inventory.toml")
    exporter = BerthMetrics(inv)
    prom = PromServer(tmp_path / "prom", [exporter.target])
    try:
        wait_for(lambda: prom.query('count_over_time(berth_container_cpu_usage_cores{container="burn"}[10s]) >= 5'),
                 90, "five scraped samples of the burner's CPU")
        burn = prom.values('avg_over_time(berth_container_cpu_usage_cores{container="burn"}[5s])', "container")
        assert 0.35 <= burn["burn"] <= 0.65, burn
        wait_for(lambda: len(prom.query("berth_node_cpu_usage_cores")) == 2, 30, "both nodes' CPU totals")
        doc = status_json(inv)

        nodes = {n["name"]: n for n in doc["nodes"]}
        assert prom.values("berth_node_up", "node") == {name: 1.0 for name in nodes}
        assert prom.values("berth_node_cpus", "node") == {k: float(n["cpus"]) for k, n in nodes.items()}
        assert prom.values("berth_node_memory_bytes", "node") == {k: float(n["mem_total"]) for k, n in nodes.items()}
        assert prom.values('berth_node_containers{state="running"}', "node") == {
            k: float(n["running"]) for k, n in nodes.items()}
        for name, cores in prom.values("berth_node_cpu_usage_cores", "node").items():
            assert cores == pytest.approx(nodes[name]["cpu_cores_used"], abs=0.15), name
        for name, ratio in prom.values("berth_node_cpu_committed_ratio", "node").items():
            assert ratio == pytest.approx(nodes[name]["cpu_committed"], abs=1e-3), name
        info = prom.query('berth_node_info{rack!=""}')
        assert {(r["metric"]["node"], r["metric"]["rack"]) for r in info} == {(a.name, "r1"), (b.name, "r2")}

        containers = {c["name"]: c for c in doc["containers"]}
        seen = {(r["metric"]["node"], r["metric"]["container"], r["metric"]["tenant"], r["metric"]["id"])
                for r in prom.query("berth_container_info")}
        assert seen == {(c["node"], c["name"], c["tenant"], c["id"]) for c in containers.values()}
        assert prom.values("berth_container_cpu_limit_cores", "container") == {"burn": 0.5, "idle-b": 0.25}
        assert prom.values("berth_container_memory_limit_bytes", "container") == {"idle-a": 64 * 2**20}
        assert containers["burn"]["cpu_percent"] / 100 == pytest.approx(burn["burn"], abs=0.15)
        for name, used in prom.values("berth_container_memory_usage_bytes", "container").items():
            assert used == pytest.approx(containers[name]["mem_used"], abs=4 * 2**20), name

        tenants = {t["name"]: t for t in doc["tenants"]}
        assert prom.values('berth_tenant_containers{state="running"}', "tenant") == {
            k: float(t["running"]) for k, t in tenants.items()}
        acme = prom.values("berth_tenant_cpu_usage_cores", "tenant")["acme"]
        assert acme == pytest.approx(tenants["acme"]["cpu_cores_used"], abs=0.15)
        samples = prom.values("berth_poller_samples_total", "node")
        assert set(samples) == set(nodes) and all(v > 0 for v in samples.values())
        assert prom.query("berth_process_resident_memory_bytes > 0")
    finally:
        prom.close()
        exporter.stop()


def shard_names(base: str, count: int) -> list[str]:
    """One node name per shard 1..count: `base-0`, `base-1`... picked by where they hash."""
    names: dict[int, str] = {}
    i = 0
    while len(names) < count:
        candidate = f"{base}-{i}"
        names.setdefault(shard_of(candidate, count), candidate)
        i += 1
    return [names[k] for k in range(1, count + 1)]


def test_two_shards_feed_one_prometheus_and_a_killed_shards_nodes_go_stale(scratch_lab: Lab,
                                                                          tmp_path: Path) -> None:
    """Given one inventory of two nodes named so that `--shard 1/2` and `--shard 2/2` take one each,
    when both shards are scraped by one Prometheus, then PromQL sees both nodes, each from its own
    shard; when shard 2 is killed, its node's series are absent (stale), not zero, and shard 1's node
    keeps reporting."""
    one, two = shard_names("rack", 2)
    a, b = scratch_lab.nodes
    a.run_container("burn", BURN_COMMAND, tenant="acme", nano_cpus=500_000_000)
    inv = tmp_path / "inventory.toml"
    inv.write_text(f'[[node]]\nname = "{one}"\nurl = "{a.url}"\n\n[[node]]\nname = "{two}"\nurl = "{b.url}"\n')
    s1 = BerthMetrics(inv, "--shard", "1/2")
    s2 = BerthMetrics(inv, "--shard", "2/2")
    prom = None
    try:
        assert s1.banner.endswith(f"(shard 1/2): {one}") and s2.banner.endswith(f"(shard 2/2): {two}")
        prom = PromServer(tmp_path / "prom", [s1.target, s2.target])
        wait_for(lambda: prom.values("berth_node_up", "node") == {one: 1.0, two: 1.0}, 60,
                 "both shards' nodes up in Prometheus")
        by_instance = {r["metric"]["node"]: r["metric"]["instance"] for r in prom.query("berth_node_up")}
        assert by_instance == {one: s1.target, two: s2.target}
        shards = {r["metric"]["instance"]: r["metric"]["shard"] for r in prom.query("berth_poller_info")}
        assert shards == {s1.target: "1/2", s2.target: "2/2"}
        wait_for(lambda: prom.query(f'berth_container_cpu_usage_cores{{node="{one}",container="burn"}}'), 60,
                 "the burner's CPU through shard 1")

        s2.kill()
        wait_for(lambda: prom.query(f'{{node="{two}"}}') == [], 30, "shard 2's series stale in Prometheus")
        assert prom.values("up", "instance") == {s1.target: 1.0, s2.target: 0.0}
        assert prom.values("berth_node_up", "node") == {one: 1.0}
        assert prom.query(f'berth_node_cpu_usage_cores{{node="{one}"}}')
        assert prom.query(f'berth_node_cpu_usage_cores{{node="{two}"}} == 0') == []
    finally:
        if prom is not None:
            prom.close()
        s1.stop()
        s2.stop()
