"""Immutable fleet snapshots: what every reader (CLI, UI, alerts) sees.

The poller owns mutable state; it publishes these frozen objects at a bounded
rate. Readers never mutate them and never do I/O to produce them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from console.fleet.history import HistoryStore


class NodeState(str, Enum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    CONNECTING = "connecting"


@dataclass(frozen=True, slots=True)
class ContainerSnapshot:
    id: str
    name: str
    node: str
    tenant: str
    image: str
    state: str  # created | running | paused | restarting | removing | exited | dead
    status: str  # human text from the daemon ("Up 3 minutes")
    created: float  # unix seconds
    started_at: float | None  # unix seconds, None when never started / unknown
    cpu_percent: float | None  # 100 = one full core; None until two samples exist
    mem_used: int | None  # bytes, docker CLI formula (usage - inactive_file)
    mem_limit: int | None  # bytes; None when unlimited
    cpu_limit: float | None  # cores (NanoCpus or quota/period); None when unlimited
    restart_count: int
    health: str | None  # healthy | unhealthy | starting | None
    labels: tuple[tuple[str, str], ...] = ()
    oom_killed: bool = False
    exit_code: int | None = None
    isolated: bool = False
    busy: str | None = None  # action in progress on this container (e.g. "migrating")
    sampled_at: float | None = None  # unix seconds of the newest stats sample
    # Its node is down: state and figures are the last known, not live. Readers show them as
    # unknown and keep them out of live totals; `data_age` on the node says how old they are.
    stale: bool = False
    stats_error: str | None = None  # why its stats give no figures (e.g. "stats empty"); None when they do

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def live_running(self) -> bool:
        """Running, as far as a live node says: a stale container counts as unknown, not running."""
        return self.state == "running" and not self.stale

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def cpu_cores(self) -> float:
        return (self.cpu_percent or 0.0) / 100.0

    @property
    def cpu_of_limit(self) -> float | None:
        """CPU use as a fraction of the container's own CPU limit."""
        if self.cpu_limit and self.cpu_percent is not None:
            return self.cpu_percent / 100.0 / self.cpu_limit
        return None


@dataclass(frozen=True, slots=True)
class Density:
    """Per-node packing figures. Ratios are plain floats (1.0 = 100 %)."""

    running: int
    containers: int
    cpus: int
    mem_total: int
    containers_per_core: float
    cpu_cores_used: float
    cpu_density: float
    mem_used: int
    mem_density: float
    cpu_committed: float  # sum of CPU limits / NCPU
    mem_committed: float  # sum of memory limits / MemTotal
    cpu_unlimited: int  # running containers with no CPU limit
    mem_unlimited: int  # running containers with no memory limit


@dataclass(frozen=True, slots=True)
class HostLoad:
    """Host-level figures from psutil, only for nodes on this machine."""

    cpu_cores_used: float
    mem_used: int
    mem_total: int


@dataclass(frozen=True, slots=True)
class NodeSnapshot:
    name: str
    url: str
    state: NodeState
    error: str | None  # last error text, kept while not up
    error_at: float | None  # unix seconds of that error
    data_age: float | None  # seconds since the newest data from this node
    labels: tuple[tuple[str, str], ...]
    cpus: int
    mem_total: int
    engine_version: str
    api_version: str
    kernel: str
    os: str
    cgroup_version: str
    density: Density
    host: HostLoad | None = None
    cordoned: bool = False
    insecure: bool = False
    cpu_history: tuple[float, ...] = ()  # cores used, 1 Hz
    mem_history: tuple[float, ...] = ()  # bytes used, 1 Hz
    samples: int = 0  # stats samples the poller applied for this node, since it started
    errors: int = 0  # errors the poller met on this node (failed connects, partial failures)
    engine: str = "docker"  # "podman" when the node serves Podman's compatible API

    @property
    def up(self) -> bool:
        return self.state is NodeState.UP

    @property
    def live(self) -> bool:
        """Its figures are current: reachable (up or degraded). A down node's are the last known."""
        return self.state in (NodeState.UP, NodeState.DEGRADED)


@dataclass(frozen=True, slots=True)
class TenantSnapshot:
    name: str
    containers: int
    running: int
    nodes: tuple[str, ...]
    cpu_cores_used: float
    mem_used: int
    cpu_quota: float | None  # cores
    mem_quota: int | None  # bytes
    top_container: str | None  # name of the container using most CPU
    stale_containers: int = 0  # on down nodes: not in the figures above (their state is unknown)

    @property
    def cpu_quota_use(self) -> float | None:
        return self.cpu_cores_used / self.cpu_quota if self.cpu_quota else None

    @property
    def mem_quota_use(self) -> float | None:
        return self.mem_used / self.mem_quota if self.mem_quota else None


@dataclass(frozen=True, slots=True)
class Observer:
    """Berth's own cost, always on screen."""

    cpu_percent: float
    rss: int


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    taken_at: float  # unix seconds
    seq: int
    nodes: tuple[NodeSnapshot, ...]
    containers: tuple[ContainerSnapshot, ...]
    tenants: tuple[TenantSnapshot, ...]
    observer: Observer | None = None
    complete: bool = False  # every reachable node has had a full stats round
    # Per-container series, read on demand (thread-safe); nodes carry theirs inline.
    history: HistoryStore | None = field(default=None, compare=False, repr=False)

    def node(self, name: str) -> NodeSnapshot | None:
        return next((n for n in self.nodes if n.name == name), None)

    def tenant(self, name: str) -> TenantSnapshot | None:
        return next((t for t in self.tenants if t.name == name), None)

    def containers_on(self, node: str) -> tuple[ContainerSnapshot, ...]:
        return tuple(c for c in self.containers if c.node == node)

    def containers_of(self, tenant: str) -> tuple[ContainerSnapshot, ...]:
        return tuple(c for c in self.containers if c.tenant == tenant)

    @property
    def nodes_up(self) -> int:
        return sum(1 for n in self.nodes if n.up)

    @property
    def running(self) -> int:
        """Running containers on live nodes; those on down nodes are counted in `stale_containers`."""
        return sum(1 for c in self.containers if c.live_running)

    @property
    def live_containers(self) -> int:
        return sum(1 for c in self.containers if not c.stale)

    @property
    def stale_containers(self) -> int:
        """Containers on down nodes: last known, state unknown now."""
        return sum(1 for c in self.containers if c.stale)

    @property
    def cpu_density(self) -> float:
        cpus = sum(n.cpus for n in self.nodes if n.live)
        return sum(n.density.cpu_cores_used for n in self.nodes if n.live) / cpus if cpus else 0.0

    @property
    def mem_density(self) -> float:
        total = sum(n.mem_total for n in self.nodes if n.live)
        return sum(n.density.mem_used for n in self.nodes if n.live) / total if total else 0.0
