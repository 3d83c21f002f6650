"""Density math: pure functions from container figures to node and tenant aggregates."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from console.fleet.model import ContainerSnapshot, Density, TenantSnapshot

UNASSIGNED = "unassigned"


def node_density(cpus: int, mem_total: int, containers: Iterable[ContainerSnapshot]) -> Density:
    """Density of one node.

    Used figures sum the containers' live samples; committed figures sum the
    limits of *running* containers (what the node has promised right now), and
    the containers without a limit are counted, not hidden.
    """
    total = running = cpu_unlimited = mem_unlimited = 0
    cpu_used = 0.0
    mem_used = 0
    cpu_limits = 0.0
    mem_limits = 0
    for c in containers:
        total += 1
        if not c.running:
            continue
        running += 1
        cpu_used += c.cpu_cores
        mem_used += c.mem_used or 0
        if c.cpu_limit:
            cpu_limits += c.cpu_limit
        else:
            cpu_unlimited += 1
        if c.mem_limit:
            mem_limits += c.mem_limit
        else:
            mem_unlimited += 1
    return Density(
        running=running,
        containers=total,
        cpus=cpus,
        mem_total=mem_total,
        containers_per_core=running / cpus if cpus else 0.0,
        cpu_cores_used=cpu_used,
        cpu_density=cpu_used / cpus if cpus else 0.0,
        mem_used=mem_used,
        mem_density=mem_used / mem_total if mem_total else 0.0,
        cpu_committed=cpu_limits / cpus if cpus else 0.0,
        mem_committed=mem_limits / mem_total if mem_total else 0.0,
        cpu_unlimited=cpu_unlimited,
        mem_unlimited=mem_unlimited,
    )


def tenants(
    containers: Iterable[ContainerSnapshot],
    quotas: Mapping[str, tuple[float | None, int | None]] | None = None,
) -> tuple[TenantSnapshot, ...]:
    """Aggregate containers per tenant. Tenants with a quota but no containers are listed too."""
    quotas = quotas or {}
    acc: dict[str, dict] = {}
    for c in containers:
        t = acc.setdefault(c.tenant, {"containers": 0, "running": 0, "nodes": set(), "cpu": 0.0, "mem": 0,
                                       "top": None, "top_cpu": -1.0, "stale": 0})
        if c.stale:  # on a down node: unknown now, counted apart from the live figures
            t["stale"] += 1
            continue
        t["containers"] += 1
        if not c.running:
            continue
        t["running"] += 1
        t["nodes"].add(c.node)
        t["cpu"] += c.cpu_cores
        t["mem"] += c.mem_used or 0
        if c.cpu_cores > t["top_cpu"]:
            t["top"], t["top_cpu"] = c.name, c.cpu_cores
    for name in quotas:
        acc.setdefault(name, {"containers": 0, "running": 0, "nodes": set(), "cpu": 0.0, "mem": 0,
                              "top": None, "top_cpu": -1.0, "stale": 0})
    out = []
    for name, t in acc.items():
        cpu_q, mem_q = quotas.get(name, (None, None))
        out.append(TenantSnapshot(
            name=name, containers=t["containers"], running=t["running"], nodes=tuple(sorted(t["nodes"])),
            cpu_cores_used=t["cpu"], mem_used=t["mem"], cpu_quota=cpu_q, mem_quota=mem_q,
            top_container=t["top"], stale_containers=t["stale"],
        ))
    out.sort(key=lambda t: (-t.cpu_cores_used, t.name))
    return tuple(out)
