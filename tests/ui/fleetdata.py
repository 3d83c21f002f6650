"""Deterministic fleet data for Pilot and snapshot tests: what the poller would publish.

A realistic small fleet (4 nodes, 5 tenants, 41 containers) with every state
the console must show: a node down with an error, a hot node, an isolated and a
migrating container, an OOM-kill, a restart loop, an unhealthy container, a
tenant over quota. `NOW` is the frozen clock; `taken_at` and all ages derive
from it. `big_fleet(n)` builds the 5,000-container fleet for measurements.
"""

from __future__ import annotations

import math
from dataclasses import replace

from console.config import AlertThresholds, Inventory, NodeConfig, TenantQuota
from console.fleet import density
from console.fleet.history import HistoryStore
from console.fleet.model import ContainerSnapshot, FleetSnapshot, NodeSnapshot, NodeState, Observer

NOW = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC
GiB = 1024**3
MiB = 1024**2

NODES = (
    # name, cpus, mem_total, state, error, data_age
    ("node-1", 16, 64 * GiB, NodeState.UP, None, 0.8),
    ("node-2", 8, 32 * GiB, NodeState.UP, None, 1.1),
    ("node-3", 32, 128 * GiB, NodeState.UP, None, 0.6),
    ("node-4", 16, 64 * GiB, NodeState.DOWN, "connect unix:///run/docker-4.sock: connection refused", 95.0),
)
QUOTAS = {"acme": (8.0, 40 * GiB), "globex": (4.0, 8 * GiB), "initech": (8.0, 32 * GiB),
          "umbrella": (2.0, 6 * GiB)}

# name, node, tenant, image, state, cpu %, mem MiB, mem limit MiB, cpu limit, extra
SPECS: tuple[tuple, ...] = (
    ("acme-api-1", "node-2", "acme", "registry.acme.io/api:4.2.1", "running", 187.5, 1850, 2048, 2.0, {}),
    ("acme-api-2", "node-2", "acme", "registry.acme.io/api:4.2.1", "running", 176.0, 1790, 2048, 2.0, {}),
    ("acme-api-3", "node-1", "acme", "registry.acme.io/api:4.2.1", "running", 92.4, 1710, 2048, 2.0, {}),
    ("acme-worker-1", "node-2", "acme", "registry.acme.io/worker:4.2.1", "running", 154.2, 3900, 4096, 2.0, {}),
    ("acme-worker-2", "node-2", "acme", "registry.acme.io/worker:4.2.1", "running", 143.9, 3020, 4096, 2.0, {}),
    ("acme-cron", "node-1", "acme", "registry.acme.io/cron:1.0", "exited", None, None, 512, None,
     {"exit_code": 0}),
    ("acme-db", "node-3", "acme", "postgres:16.3", "running", 61.3, 7800, 8192, 4.0, {}),
    ("acme-cache", "node-3", "acme", "redis:7.2", "running", 12.1, 900, 1024, 1.0, {}),
    ("globex-web-1", "node-1", "globex", "nginx:1.27", "running", 4.2, 48, 256, 0.5, {}),
    ("globex-web-2", "node-1", "globex", "nginx:1.27", "running", 3.9, 47, 256, 0.5, {}),
    ("globex-web-3", "node-3", "globex", "nginx:1.27", "running", 4.4, 52, 256, 0.5, {"isolated": True}),
    ("globex-app-1", "node-1", "globex", "ghcr.io/globex/app:2024.12", "running", 38.0, 610, 1024, 1.0, {}),
    ("globex-app-2", "node-3", "globex", "ghcr.io/globex/app:2024.12", "running", 41.7, 640, 1024, 1.0,
     {"busy": "migrating"}),
    ("globex-report", "node-1", "globex", "ghcr.io/globex/report:7", "exited", None, None, 1024, 1.0,
     {"exit_code": 137, "oom_killed": True}),
    ("globex-queue", "node-3", "globex", "rabbitmq:3.13", "running", 8.8, 420, 1024, 1.0, {}),
    ("initech-tps-1", "node-1", "initech", "initech/tps:9", "running", 22.0, 300, 512, 1.0, {}),
    ("initech-tps-2", "node-1", "initech", "initech/tps:9", "running", 21.5, 310, 512, 1.0, {}),
    ("initech-tps-3", "node-3", "initech", "initech/tps:9", "running", 19.8, 298, 512, 1.0, {}),
    ("initech-printer", "node-3", "initech", "initech/printer:0.9", "restarting", None, None, 256, 0.5,
     {"restart_count": 7, "exit_code": 1}),
    ("initech-ledger", "node-3", "initech", "initech/ledger:3.1", "running", 33.0, 2200, 4096, 2.0,
     {"health": "unhealthy", "restart_count": 1}),
    ("initech-batch", "node-1", "initech", "initech/batch:3", "exited", None, None, None, None,
     {"exit_code": 3}),
    ("initech-stapler", "node-4", "initech", "initech/stapler:1", "running", None, None, 128, 0.25, {}),
    ("initech-fax", "node-4", "initech", "initech/fax:2", "running", None, None, 128, 0.25, {}),
    ("umbrella-lab-1", "node-3", "umbrella", "umbrella/lab:x", "running", 71.0, 1400, 2048, 1.0, {}),
    ("umbrella-lab-2", "node-3", "umbrella", "umbrella/lab:x", "running", 68.2, 1390, 2048, 1.0, {}),
    ("umbrella-lab-3", "node-1", "umbrella", "umbrella/lab:x", "running", 74.9, 1460, 2048, 1.0, {}),
    ("umbrella-hive", "node-4", "umbrella", "umbrella/hive:5", "running", None, None, 2048, 1.0, {}),
    ("umbrella-gate", "node-1", "umbrella", "umbrella/gate:2", "paused", 0.0, 120, 256, 0.5, {}),
    ("ops-prometheus", "node-3", "unassigned", "prom/prometheus:v2.53", "running", 14.2, 1100, None, None, {}),
    ("ops-node-exporter-1", "node-1", "unassigned", "prom/node-exporter:v1.8", "running", 0.6, 18, None, None,
     {}),
    ("ops-node-exporter-2", "node-2", "unassigned", "prom/node-exporter:v1.8", "running", 0.7, 19, None, None,
     {}),
    ("ops-node-exporter-3", "node-3", "unassigned", "prom/node-exporter:v1.8", "running", 0.5, 18, None, None,
     {}),
    ("ops-node-exporter-4", "node-4", "unassigned", "prom/node-exporter:v1.8", "running", None, None, None,
     None, {}),
    ("ops-grafana", "node-3", "unassigned", "grafana/grafana:11.1", "running", 2.3, 210, None, None, {}),
    ("ops-loki", "node-3", "unassigned", "grafana/loki:3.1", "running", 9.4, 760, None, None, {}),
    ("ops-traefik", "node-1", "unassigned", "traefik:v3.1", "running", 3.1, 95, None, None, {}),
    ("ops-backup", "node-2", "unassigned", "restic/restic:0.16", "exited", None, None, None, None,
     {"exit_code": 0}),
    ("acme-search", "node-2", "acme", "elasticsearch:8.14", "running", 46.4, 9800, 12288, 4.0, {}),
    ("acme-ml-train", "node-2", "acme", "registry.acme.io/train:gpu-2", "running", 38.3, 5400, None, None, {}),
    ("globex-ftp", "node-4", "globex", "atmoz/sftp:alpine", "running", None, None, 128, 0.25, {}),
    ("umbrella-vault", "node-1", "umbrella", "hashicorp/vault:1.17", "running", 1.2, 160, 512, 0.5, {}),
)


def container_id(name: str, index: int = 0) -> str:
    import hashlib

    return hashlib.sha256(f"{name}/{index}".encode()).hexdigest()


def make_container(spec: tuple, index: int = 0, name: str | None = None) -> ContainerSnapshot:
    cname, node, tenant, image, state, cpu, mem, mem_lim, cpu_lim, extra = spec
    cname = name or cname
    age = 3600 * (1 + (index * 7 + len(cname) * 13) % 200) + 60 * (len(cname) % 60)
    running = state in ("running", "paused")
    return ContainerSnapshot(
        id=container_id(cname, index), name=cname, node=node, tenant=tenant, image=image, state=state,
        status="Up" if running else state.title(), created=NOW - age - 600,
        started_at=(NOW - (120 if extra.get("restart_count", 0) >= 3 else age)) if state != "created" else None,
        cpu_percent=cpu, mem_used=None if mem is None else mem * MiB,
        mem_limit=None if mem_lim is None else mem_lim * MiB, cpu_limit=cpu_lim,
        restart_count=extra.get("restart_count", 0), health=extra.get("health"),
        labels=(("tenant", tenant),) if tenant != "unassigned" else (),
        oom_killed=extra.get("oom_killed", False), exit_code=extra.get("exit_code"),
        isolated=extra.get("isolated", False), busy=extra.get("busy"),
        sampled_at=NOW - 1 if cpu is not None else None,
    )


def _series(seed: int, points: int, base: float, swing: float) -> list[float]:
    return [max(0.0, base + swing * math.sin((i + seed) / 7.0) + swing * 0.5 * math.sin((i * 3 + seed) / 5.0))
            for i in range(points)]


def build(containers: list[ContainerSnapshot], nodes_spec: tuple = NODES, history_points: int = 120,
          now: float = NOW, seq: int = 1) -> FleetSnapshot:
    # What the poller publishes for a down node's containers: the last known, marked stale.
    down = {spec[0] for spec in nodes_spec if spec[3] is NodeState.DOWN}
    containers = [replace(c, stale=True) if c.node in down and not c.stale else c for c in containers]
    history = HistoryStore(points=max(history_points, 1))
    for i, c in enumerate(containers[:500]):
        if c.cpu_percent is None:
            continue
        for cpu, mem in zip(_series(i, history_points, c.cpu_cores, c.cpu_cores * 0.3),
                            _series(i + 3, history_points, float(c.mem_used or 0), (c.mem_used or 0) * 0.05),
                            strict=True):
            history.record(c.id, cpu, mem)
    nodes = []
    for k, (name, cpus, mem_total, state, error, age) in enumerate(nodes_spec):
        own = [c for c in containers if c.node == name]
        d = density.node_density(cpus, mem_total, own)
        points = history_points if state is NodeState.UP else history_points // 2
        nodes.append(NodeSnapshot(
            name=name, url=f"unix:///run/docker-{k + 1}.sock", state=state, error=error,
            error_at=now - age if error else None, data_age=age, labels=(("rack", f"r{k + 1}"),),
            cpus=cpus, mem_total=mem_total, engine_version="27.1.1", api_version="1.46",
            kernel="6.8.0-45-generic", os="Ubuntu 24.04.1 LTS", cgroup_version="2", density=d,
            cordoned=False,
            cpu_history=tuple(_series(k * 11, points, d.cpu_cores_used or cpus * 0.3, cpus * 0.08)),
            mem_history=tuple(_series(k * 5, points, float(d.mem_used or mem_total * 0.4), mem_total * 0.02)),
        ))
    return FleetSnapshot(
        taken_at=now, seq=seq, nodes=tuple(nodes), containers=tuple(containers),
        tenants=density.tenants(containers, QUOTAS), observer=Observer(cpu_percent=2.4, rss=84 * MiB),
        complete=True, history=history,
    )


def fleet(now: float = NOW) -> FleetSnapshot:
    return build([make_container(s) for s in SPECS], now=now)


def inventory() -> Inventory:
    return Inventory(
        nodes=tuple(NodeConfig(name=n[0], url=f"unix:///run/docker-{i + 1}.sock") for i, n in enumerate(NODES)),
        tenants={name: TenantQuota(name, cpu, mem) for name, (cpu, mem) in QUOTAS.items()},
        alerts=AlertThresholds(),
        source="tests/ui/fleetdata.py",
    )


def big_fleet(count: int = 5000, nodes: int = 40) -> FleetSnapshot:
    """`count` containers over `nodes` nodes, cycling the specs with numbered names."""
    node_spec = tuple((f"bm-{i + 1:02d}", 64, 256 * GiB, NodeState.UP, None, 1.0) for i in range(nodes))
    containers = []
    for i in range(count):
        spec = SPECS[i % len(SPECS)]
        node = f"bm-{(i * 7) % nodes + 1:02d}"
        cpu = None if spec[5] is None else round((spec[5] * (1 + (i * 37) % 100 / 50.0)) % 400, 1)
        spec = (spec[0], node, *spec[2:5], cpu, *spec[6:])
        containers.append(make_container(spec, i, name=f"{spec[0]}-{i:05d}"))
    return build(containers, node_spec, history_points=60)


def with_node(snap: FleetSnapshot, name: str, **changes) -> FleetSnapshot:
    nodes = tuple(replace(n, **changes) if n.name == name else n for n in snap.nodes)
    return replace(snap, nodes=nodes, seq=snap.seq + 1)
