"""What a node has promised (limits, ports, names) and whether one more container fits.

Used by migrate's pre-flight, by drain's placement and by the TUI's target picker. Figures are
*committed* ones (sums of limits of running containers over the node's size), the same the fleet
density view and the overcommit alert thresholds use.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from console.actions import engine_ops as ops
from console.engine.client import EngineClient
from console.fmt import size

WILDCARD = frozenset({"", "0.0.0.0", "::"})


@dataclass
class Need:
    """What one container asks of a node."""

    cpu: float  # cores by limit (0 when unlimited)
    mem: int  # bytes by limit (0 when unlimited)
    ports: frozenset[tuple[str, str, str]]  # (host ip, host port, proto)
    running: bool

    @staticmethod
    def of(doc: dict[str, Any]) -> Need:
        host = doc.get("HostConfig") or {}
        cpu = (host.get("NanoCpus") or 0) / 1e9
        if not cpu and host.get("CpuQuota", 0) > 0:
            cpu = host["CpuQuota"] / (host.get("CpuPeriod") or 100000)
        ports = set()
        for spec, binds in (host.get("PortBindings") or {}).items():
            _, _, proto = spec.partition("/")
            for b in binds or []:
                if b.get("HostPort"):
                    ports.add((b.get("HostIp") or "", str(b["HostPort"]), proto or "tcp"))
        state = doc.get("State") or {}
        return Need(cpu, int(host.get("Memory") or 0), frozenset(ports), bool(state.get("Running")))


@dataclass
class NodeLoad:
    name: str
    ncpu: int
    mem_total: int
    driver: str
    running: int = 0
    total: int = 0
    cpu_limits: float = 0.0
    mem_limits: int = 0
    names: set[str] = field(default_factory=set)
    ports: set[tuple[str, str, str]] = field(default_factory=set)
    cordoned: bool = False
    cordon_note: str = ""

    def with_(self, need: Need) -> NodeLoad:
        if not need.running:
            return NodeLoad(**{**self.__dict__, "total": self.total + 1})
        return NodeLoad(**{**self.__dict__, "running": self.running + 1, "total": self.total + 1,
                           "cpu_limits": self.cpu_limits + need.cpu, "mem_limits": self.mem_limits + need.mem,
                           "ports": self.ports | set(need.ports)})

    def without(self, need: Need) -> NodeLoad:
        if not need.running:
            return NodeLoad(**{**self.__dict__, "total": max(self.total - 1, 0)})
        return NodeLoad(**{**self.__dict__, "running": max(self.running - 1, 0), "total": max(self.total - 1, 0),
                           "cpu_limits": max(self.cpu_limits - need.cpu, 0.0),
                           "mem_limits": max(self.mem_limits - need.mem, 0)})

    @property
    def cpu_committed(self) -> float:
        return self.cpu_limits / self.ncpu if self.ncpu else 0.0

    @property
    def mem_committed(self) -> float:
        return self.mem_limits / self.mem_total if self.mem_total else 0.0

    def density(self) -> str:
        per_core = self.running / self.ncpu if self.ncpu else 0.0
        return (f"{self.running} running ({per_core:.1f}/core), CPU committed {self.cpu_committed:.0%}, "
                f"memory committed {self.mem_committed:.0%}")

    def port_conflicts(self, need: Need) -> list[str]:
        out = []
        for ip, port, proto in sorted(need.ports):
            for oip, oport, oproto in self.ports:
                if port == oport and proto == oproto and (ip == oip or ip in WILDCARD or oip in WILDCARD):
                    out.append(f"{ip or '*'}:{port}/{proto}")
                    break
        return out


async def load_node(client: EngineClient) -> NodeLoad:
    await ops.ready(client)
    info, items, markers = await asyncio.gather(client.info(), client.containers(all=True),
                                                ops.networks(client, ops.ROLE))
    load = NodeLoad(client.name, int(info.get("NCPU") or 0), int(info.get("MemTotal") or 0),
                    str(info.get("Driver") or ""))
    for net in markers:
        labels = net.get("Labels") or {}
        if labels.get(ops.ROLE) == "cordon":
            load.cordoned = True
            load.cordon_note = f"cordoned by {labels.get(ops.OWNER, '?')}: {labels.get('berth.reason', '')}".strip(": ")
    running = []
    for item in items:
        labels = item.get("Labels") or {}
        for n in item.get("Names") or []:
            load.names.add(str(n).lstrip("/"))
        if labels.get(ops.ROLE):
            continue
        load.total += 1
        if item.get("State") == "running":
            load.running += 1
            running.append(item["Id"])
            for p in item.get("Ports") or []:
                if p.get("PublicPort"):
                    load.ports.add((p.get("IP") or "", str(p["PublicPort"]), p.get("Type") or "tcp"))
    sem = asyncio.Semaphore(8)

    async def one(cid: str) -> Need | None:
        async with sem:
            doc = await ops.find_container(client, cid)
            return Need.of(doc) if doc else None

    for need in await asyncio.gather(*(one(c) for c in running)):
        if need is not None:
            load.cpu_limits += need.cpu
            load.mem_limits += need.mem
    return load


def fit_problems(load: NodeLoad, need: Need, cpu_max: float, mem_max: float) -> list[str]:
    """Why ``need`` does not fit ``load`` (empty when it fits)."""
    problems = []
    if load.cordoned:
        problems.append(f"node {load.name} is {load.cordon_note or 'cordoned'}")
    if need.mem and load.mem_total and need.mem > load.mem_total:
        problems.append(f"memory limit {size(need.mem)} exceeds the node's {size(load.mem_total)}")
    after = load.with_(need)
    if need.running and need.mem and after.mem_committed > mem_max:
        problems.append(f"memory committed would be {after.mem_committed:.0%} (threshold {mem_max:.0%})")
    if need.running and need.cpu and after.cpu_committed > cpu_max:
        problems.append(f"CPU committed would be {after.cpu_committed:.0%} (threshold {cpu_max:.0%})")
    conflicts = load.port_conflicts(need)  # a stopped container could not start there either
    if conflicts:
        problems.append(f"host port {', '.join(conflicts)} already published on {load.name}")
    return problems


def fit_line(load: NodeLoad, need: Need, problems: list[str]) -> str:
    after = load.with_(need)
    free_mem = max(load.mem_total - after.mem_limits, 0)
    free_cpu = max(load.ncpu - after.cpu_limits, 0.0)
    head = f"free by limits after the move: {size(free_mem)} memory, {free_cpu:.1f} CPU; {after.density()}"
    return f"unfit: {'; '.join(problems)} — {head}" if problems else head
