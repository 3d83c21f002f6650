"""Headless fleet status: one complete stats round, printed as tables or JSON."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, TextIO

import orjson

from console import fmt
from console.config import Inventory
from console.fleet.model import ContainerSnapshot, FleetSnapshot, NodeSnapshot, NodeState
from console.fleet.poller import Fleet


def _container_age(snap: FleetSnapshot, c: ContainerSnapshot) -> float | None:
    """Seconds since what is shown of the container was true: its newest sample, or (on a down
    node) the node's last contact if that is older."""
    ages = [snap.taken_at - c.sampled_at] if c.sampled_at else []
    node = snap.node(c.node)
    if c.stale and node is not None and node.data_age is not None:
        ages.append(node.data_age)
    return round(max(ages), 3) if ages else None


def to_json(snap: FleetSnapshot) -> dict[str, Any]:
    """The documented `berth status --json` shape: sizes in bytes, CPU percent where 100 = one core."""
    return {
        "taken_at": snap.taken_at,
        "complete": snap.complete,
        "stale_containers": snap.stale_containers,
        "observer": {"cpu_percent": snap.observer.cpu_percent, "rss": snap.observer.rss} if snap.observer else None,
        "nodes": [
            {
                "name": n.name, "state": n.state.value, "error": n.error, "cpus": n.cpus,
                "mem_total": n.mem_total, "running": n.density.running, "containers": n.density.containers,
                "cpu_cores_used": round(n.density.cpu_cores_used, 4), "cpu_density": round(n.density.cpu_density, 4),
                "mem_used": n.density.mem_used, "mem_density": round(n.density.mem_density, 4),
                "cpu_committed": round(n.density.cpu_committed, 4),
                "mem_committed": round(n.density.mem_committed, 4),
                "cpu_unlimited": n.density.cpu_unlimited, "mem_unlimited": n.density.mem_unlimited,
                "engine": n.engine, "engine_version": n.engine_version, "data_age": n.data_age, "cordoned": n.cordoned,
                # down: every figure above is the last known, `data_age` seconds old
                "stale": not n.live,
                # local nodes only: the whole host as psutil sees it, load outside containers included
                "host_cpu_cores_used": round(n.host.cpu_cores_used, 4) if n.host else None,
                "host_mem_used": n.host.mem_used if n.host else None,
            }
            for n in snap.nodes
        ],
        "containers": [
            {
                "id": c.id, "name": c.name, "node": c.node, "tenant": c.tenant, "image": c.image,
                "state": c.state, "cpu_percent": None if c.cpu_percent is None else round(c.cpu_percent, 3),
                "mem_used": c.mem_used, "mem_limit": c.mem_limit, "cpu_limit": c.cpu_limit,
                "started_at": c.started_at, "restart_count": c.restart_count, "health": c.health,
                "isolated": c.isolated,
                # on a down node: state and figures are the last known, `data_age` seconds old
                "stale": c.stale, "data_age": _container_age(snap, c),
                "stats_error": c.stats_error,  # why it has no CPU/memory figures, when its stats failed
            }
            for c in sorted(snap.containers, key=lambda c: (c.node, c.name))
        ],
        "tenants": [
            {
                "name": t.name, "containers": t.containers, "running": t.running, "nodes": list(t.nodes),
                "cpu_cores_used": round(t.cpu_cores_used, 4), "mem_used": t.mem_used,
                "cpu_quota": t.cpu_quota, "mem_quota": t.mem_quota,
                "stale_containers": t.stale_containers,  # on down nodes, not in the figures above
            }
            for t in snap.tenants
        ],
    }


def _engine(n: NodeSnapshot) -> str:
    """As the console shows it: the version, named when the engine is not dockerd."""
    return f"{n.engine} {n.engine_version}" if n.engine != "docker" else n.engine_version


def _node_row(n: NodeSnapshot) -> list[str]:
    d = n.density
    state = n.state.value + (f" ({n.error})" if n.error and not n.up else "")
    if not n.live:  # down: the last known figures are not shown as if live (the AGE column says how old)
        return [n.name, state, f"?/{d.containers}", f"?/{n.cpus}", "?", f"?/{fmt.size(n.mem_total)}", "?", "?",
                "?", "?", _engine(n), fmt.duration(n.data_age)]
    return [n.name, state, f"{d.running}/{d.containers}", f"{d.cpu_cores_used:.2f}/{n.cpus}", fmt.pct(d.cpu_density),
            f"{fmt.size(d.mem_used)}/{fmt.size(n.mem_total)}", fmt.pct(d.mem_density),
            f"{d.cpu_committed:.2f}x +{d.cpu_unlimited} unl", f"{d.mem_committed:.2f}x +{d.mem_unlimited} unl",
            f"{d.containers_per_core:.1f}", _engine(n), fmt.duration(n.data_age)]


def _container_row(c: ContainerSnapshot, now: float) -> list[str]:
    if c.stale:  # on a down node: last known state, figures unknown
        return [c.name, c.node, c.tenant, c.image[:30], f"{c.state}?", "?" if c.running else "-",
                "?" if c.running else "-", fmt.size(c.mem_limit), "?" if c.running else "-"]
    return [c.name, c.node, c.tenant, c.image[:30], c.state,
            "-" if c.cpu_percent is None else f"{c.cpu_percent:.1f}", fmt.size(c.mem_used), fmt.size(c.mem_limit),
            fmt.duration(now - c.started_at) if c.started_at and c.running else "-"]


def render_tables(snap: FleetSnapshot) -> str:
    nodes = fmt.table(
        ["NODE", "STATE", "RUN/ALL", "CPU USED", "CPU DENS", "MEM USED", "MEM DENS", "CPU COMMIT",
         "MEM COMMIT", "PER CORE", "ENGINE", "AGE"],
        [_node_row(n) for n in snap.nodes],
        right={3, 4, 5, 6, 9},
    )
    now = time.time()
    containers = fmt.table(
        ["CONTAINER", "NODE", "TENANT", "IMAGE", "STATE", "CPU %", "MEM", "LIMIT", "UP"],
        [_container_row(c, now)
         for c in sorted(snap.containers, key=lambda c: (c.stale, -(c.cpu_percent or 0.0)))],
        right={5, 6, 7},
    )
    tenants = fmt.table(
        ["TENANT", "RUN/ALL", "NODES", "CPU USED", "CPU QUOTA", "MEM USED", "MEM QUOTA", "TOP"],
        [[t.name, f"{t.running}/{t.containers}" + (f" +{t.stale_containers}?" if t.stale_containers else ""),
          str(len(t.nodes)), f"{t.cpu_cores_used:.2f}",
          "-" if t.cpu_quota is None else f"{t.cpu_quota:g} ({fmt.pct(t.cpu_quota_use)})",
          fmt.size(t.mem_used),
          "-" if t.mem_quota is None else f"{fmt.size(t.mem_quota)} ({fmt.pct(t.mem_quota_use)})",
          t.top_container or "-"]
         for t in snap.tenants],
        right={1, 2, 3, 5},
    )
    return f"{nodes}\n\n{containers}\n\n{tenants}"


def summary_line(snap: FleetSnapshot) -> str:
    down = [n.name for n in snap.nodes if n.state is not NodeState.UP]
    obs = snap.observer
    return (f"{time.strftime('%H:%M:%S', time.localtime(snap.taken_at))} nodes {snap.nodes_up}/{len(snap.nodes)} up"
            f" · running {snap.running}/{snap.live_containers}"
            + (f" (+{snap.stale_containers} on down nodes)" if snap.stale_containers else "")
            + f" · cpu {fmt.pct(snap.cpu_density)}"
            f" · mem {fmt.pct(snap.mem_density)}"
            + (f" · not up: {', '.join(down)}" if down else "")
            + (f" · berth {obs.cpu_percent:.0f}% {fmt.size(obs.rss)}" if obs else ""))


def incomplete(snap: FleetSnapshot, timeout: float) -> list[dict[str, Any]]:
    """Running containers on live nodes that the round has no CPU figure for, and why: their stats
    failed (`stats_error`, not waited on), or no sample came within the wait."""
    return [{"node": c.node, "id": c.id, "name": c.name,
             "reason": c.stats_error or f"no stats sample within {timeout:g}s"}
            for c in sorted(snap.containers, key=lambda c: (c.node, c.name))
            if c.running and not c.stale and c.cpu_percent is None]


def incomplete_line(missing: list[dict[str, Any]], shown: int = 3) -> str:
    """One line for stderr naming what the round lacks (the first few; JSON has them all)."""
    items = [f"{m['node']}/{m['name']} ({m['reason']})" for m in missing[:shown]]
    more = f" and {len(missing) - shown} more" if len(missing) > shown else ""
    noun = "container" if len(missing) == 1 else "containers"
    return f"berth: stats round incomplete for {len(missing)} {noun}: {'; '.join(items)}{more}"


async def run_status(inventory: Inventory, *, as_json: bool, watch: bool, interval: float, timeout: float,
                     out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout  # at call time: the CLI's printable stream, or a test's capture
    err = err or sys.stderr
    async with Fleet(inventory) as fleet:
        snap = await fleet.wait_complete(timeout)
        if watch:
            while True:
                print(summary_line(snap), file=out, flush=True)
                await asyncio.sleep(interval)
                snap = fleet.publish()
        missing = incomplete(snap, timeout)
        if as_json:
            doc = to_json(snap)
            doc["incomplete"] = missing
            # exact data; C1 controls and bidi marks (which orjson passes raw) as JSON escapes
            out.write(fmt.json_safe(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()) + "\n")
        else:
            out.write(render_tables(snap) + "\n")
        if missing:  # a partial result: said on stderr, and exit 1 as for a node not up
            print(incomplete_line(missing), file=err, flush=True)
        return 0 if all(n.up for n in snap.nodes) and not missing else 1
