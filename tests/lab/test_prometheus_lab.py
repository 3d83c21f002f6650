"""Berth through a real Prometheus: Debian's server scrapes `berth metrics` on real dockerd nodes,
and what PromQL answers agrees with `berth status --json` from the same nodes; two shards feed
one Prometheus, and a killed shard's nodes turn absent (stale), not zero."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dockerlab import BURN_COMMAND, Lab
from promlab import ROOT, BerthMetrics, PromServer, require_prometheus, wait_for

from console.metrics.shard import shard_of

pytestmark = pytest.mark.lab


@pytest.fixture(autouse=True)
def _prometheus_installed() -> None:
    require_prometheus()


def cgroup_cpu_seconds(container_id: str) -> float:
    """CPU seconds the kernel charged to a lab container (cgroup v1 cpuacct, or v2 cpu.stat)."""
    for path in (Path("/sys/fs/cgroup/cpuacct/docker", container_id, "cpuacct.usage"),
                 Path("/sys/fs/cgroup/cpu,cpuacct/docker", container_id, "cpuacct.usage")):
        if path.exists():
            return int(path.read_text()) / 1e9
    stat = Path("/sys/fs/cgroup/docker", container_id, "cpu.stat")
    for line in stat.read_text().splitlines():
        if line.startswith("usage_usec "):
            return int(line.split()[1]) / 1e6
    raise AssertionError(f"no CPU accounting for {container_id}")


def berth(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "console", *args], check=False, capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def status_json(inventory: Path) -> dict:
    done = berth("status", "--json", "--inventory", str(inventory))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def prom_status_json(url: str, ok: bool = True) -> dict:
    done = berth("status", "--json", "--prometheus", url)
    assert done.returncode == (0 if ok else 1), done.stderr
    return json.loads(done.stdout)


def keys(doc: dict) -> tuple:
    return (sorted(doc), *(sorted(doc[k][0]) if doc[k] else [] for k in ("nodes", "containers", "tenants")))


def test_promql_agrees_with_status_json_and_a_half_core_burner_reads_half_a_core(scratch_lab: Lab,
                                                                                 tmp_path: Path) -> None:
    """Given two nodes, one running a busy loop limited to 0.5 CPU (acme) and an idle container with a
    64 MiB limit, the other an idle globex container limited to 0.25 CPU, when `berth metrics` serves
    them and Prometheus scrapes every second, then PromQL reads the burner as the kernel's own CPU
    accounting does over the same window (within 0.1 core), at 0.35-0.65 cores when the machine gave it
    its half core, and nodes, containers, limits and tenants agree with `berth status --json` (CPU
    within sampling error), as does `berth status --prometheus --json`."""
    a, b = scratch_lab.nodes
    burn_id = a.run_container("burn", BURN_COMMAND, tenant="acme", nano_cpus=500_000_000)
    a.run_container("idle-a", tenant="acme", mem_limit="64m")
    b.run_container("idle-b", tenant="globex", nano_cpus=250_000_000)
    inv = scratch_lab.write_inventory(tmp_path / "inventory.toml")
    exporter = BerthMetrics(inv)
    prom = PromServer(tmp_path / "prom", [exporter.target])
    try:
        wait_for(lambda: prom.query('count_over_time(berth_container_cpu_usage_cores{container="burn"}[10s]) >= 8'),
                 90, "eight scraped samples of the burner's CPU")
        # the kernel's own account of the burner over a window, against Prometheus' over the same window
        t0, used0 = time.time(), cgroup_cpu_seconds(burn_id)
        wait_for(lambda: prom.query(f"timestamp(berth_node_up) > {t0 + 12}"), 60, "12 s scraped")
        t1, used1 = time.time(), cgroup_cpu_seconds(burn_id)
        truth = (used1 - used0) / (t1 - t0)
        # a sample says what happened in the second before it, and reaches Prometheus up to a second later
        burn = prom.values(f'avg_over_time(berth_container_cpu_usage_cores{{container="burn"}}[{t1 - t0 - 2:.0f}s])',
                           "container", at=t1)
        assert burn["burn"] == pytest.approx(truth, abs=0.1), (burn, truth)
        if truth >= 0.35:  # the machine gave it its half core (a saturated machine starves it: no verdict)
            assert 0.35 <= burn["burn"] <= 0.65, burn
        wait_for(lambda: len(prom.query("berth_node_cpu_usage_cores")) == 2, 30, "both nodes' CPU totals")
        doc = status_json(inv)
        wait_for(lambda: prom.query(f"timestamp(berth_node_up) > {doc['taken_at'] + 5}"), 30,
                 "Prometheus scraped 5 s past the status round")

        nodes = {n["name"]: n for n in doc["nodes"]}
        assert prom.values("berth_node_up", "node") == {name: 1.0 for name in nodes}
        assert prom.values("berth_node_cpus", "node") == {k: float(n["cpus"]) for k, n in nodes.items()}
        assert prom.values("berth_node_memory_bytes", "node") == {k: float(n["mem_total"]) for k, n in nodes.items()}
        assert prom.values('berth_node_containers{state="running"}', "node") == {
            k: float(n["running"]) for k, n in nodes.items()}
        # CPU within sampling error: inside what Prometheus saw around the status round, give or take 0.1 core
        at, window = doc["taken_at"], "[15s]"
        low = prom.values(f"min_over_time(berth_node_cpu_usage_cores{window})", "node", at=at + 5)
        high = prom.values(f"max_over_time(berth_node_cpu_usage_cores{window})", "node", at=at + 5)
        assert set(low) == set(nodes)
        for name, n in nodes.items():
            assert low[name] - 0.1 <= n["cpu_cores_used"] <= high[name] + 0.1, (name, low, high, n)
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
        low_c = prom.values(f"min_over_time(berth_container_cpu_usage_cores{window})", "container", at=at + 5)
        high_c = prom.values(f"max_over_time(berth_container_cpu_usage_cores{window})", "container", at=at + 5)
        assert low_c["burn"] - 0.1 <= containers["burn"]["cpu_percent"] / 100 <= high_c["burn"] + 0.1
        for name, used in prom.values("berth_container_memory_usage_bytes", "container").items():
            assert used == pytest.approx(containers[name]["mem_used"], abs=4 * 2**20), name

        tenants = {t["name"]: t for t in doc["tenants"]}
        assert prom.values('berth_tenant_containers{state="running"}', "tenant") == {
            k: float(t["running"]) for k, t in tenants.items()}
        low_t = prom.values(f"min_over_time(berth_tenant_cpu_usage_cores{window})", "tenant", at=at + 5)
        high_t = prom.values(f"max_over_time(berth_tenant_cpu_usage_cores{window})", "tenant", at=at + 5)
        assert low_t["acme"] - 0.1 <= tenants["acme"]["cpu_cores_used"] <= high_t["acme"] + 0.1
        # read back: `berth status --prometheus --json` has the same keys and the same fleet
        back = prom_status_json(prom.url)
        assert keys(back) == keys(doc)
        assert {(n["name"], n["state"], n["cpus"], n["mem_total"], n["running"], n["containers"], n["stale"])
                for n in back["nodes"]} == {(n["name"], n["state"], n["cpus"], n["mem_total"], n["running"],
                                             n["containers"], n["stale"]) for n in doc["nodes"]}
        assert {(c["id"], c["name"], c["node"], c["tenant"], c["state"], c["cpu_limit"], c["mem_limit"])
                for c in back["containers"]} == {(c["id"], c["name"], c["node"], c["tenant"], c["state"],
                                                  c["cpu_limit"], c["mem_limit"]) for c in doc["containers"]}
        at_read = prom.values("berth_container_cpu_usage_cores", "container", at=back["taken_at"])
        assert {c["name"]: c["cpu_percent"] for c in back["containers"] if c["cpu_percent"] is not None} == {
            name: pytest.approx(v * 100, abs=1e-3) for name, v in at_read.items()}
        assert all(n["data_age"] is not None and n["data_age"] < 15 for n in back["nodes"])
        assert {t["name"]: t["running"] for t in back["tenants"]} == {t["name"]: t["running"] for t in doc["tenants"]}

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
    b.run_container("burn2", BURN_COMMAND, tenant="acme", nano_cpus=500_000_000)
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
        wait_for(lambda: len(prom.query("berth_container_cpu_usage_cores")) == 2, 60, "both burners' CPU")
        both = prom_status_json(prom.url)
        assert {(n["name"], n["state"]) for n in both["nodes"]} == {(one, "up"), (two, "up")}
        assert {(c["name"], c["node"], c["stale"]) for c in both["containers"]} == {("burn", one, False),
                                                                                  ("burn2", two, False)}

        s2.kill()
        wait_for(lambda: prom.query(f'{{node="{two}"}}') == [], 30, "shard 2's series stale in Prometheus")
        assert prom.values("up", "instance") == {s1.target: 1.0, s2.target: 0.0}
        assert prom.values("berth_node_up", "node") == {one: 1.0}
        assert prom.query(f'berth_node_cpu_usage_cores{{node="{one}"}}')
        assert prom.query(f'berth_node_cpu_usage_cores{{node="{two}"}} == 0') == []

        # read back: shard 2's node is down and stale with its last known figures, never zeros
        after = prom_status_json(prom.url, ok=False)
        nodes = {n["name"]: n for n in after["nodes"]}
        assert (nodes[one]["state"], nodes[one]["stale"]) == ("up", False)
        gone = nodes[two]
        assert (gone["state"], gone["stale"]) == ("down", True)
        assert "stopped reporting" in gone["error"] and gone["data_age"] is not None
        assert gone["cpus"] == nodes[one]["cpus"] and gone["running"] == 1  # last known, not 0
        burn2 = next(c for c in after["containers"] if c["name"] == "burn2")
        last = prom.values('last_over_time(berth_container_cpu_usage_cores{container="burn2"}[1h])', "container")
        assert burn2["stale"] is True and burn2["state"] == "running"
        assert burn2["cpu_percent"] == pytest.approx(last["burn2"] * 100, abs=1e-3) and burn2["cpu_percent"] > 10
        assert after["stale_containers"] == 1
        acme = next(t for t in after["tenants"] if t["name"] == "acme")
        assert (acme["running"], acme["stale_containers"]) == (1, 1)
        table = berth("status", "--prometheus", prom.url).stdout
        row = next(line for line in table.splitlines() if line.startswith(two))
        assert "?/1" in row and "0.00/" not in row
    finally:
        if prom is not None:
            prom.close()
        s1.stop()
        s2.stop()
