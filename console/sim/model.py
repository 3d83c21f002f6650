"""The simulated fleet's layout and load model: deterministic under a seed, driven by the real clock.

`plan_fleet` decides everything static (nodes, tenants, containers, limits,
which tenant runs hot on which node, where the OOM, the restart loop and the
flapping node are) from `random.Random(seed)` alone, so the same seed always
yields the same fleet. `Load` is one container's demand: a smooth random walk
around its baseline, advanced one step per simulated second with its own
seeded RNG, so the same seed also yields the same load sequence (the wall
clock only decides when each step happens).

Nothing here does I/O; `console.sim.daemon` turns these specs into a live node.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

TENANTS = ("acme", "globex", "initech", "umbrella", "hooli", "wayne", "stark", "tyrell", "soylent", "cyberdyne")
TENANT_LABEL = "tenant"

# Container roles: what a container does over time, beyond its random walk.
NORMAL = "normal"
HOT = "hot"  # CPU-hungry container of the hot tenant, concentrated on the hot node
LEAK = "leak"  # leaks memory until its limit, is OOM-killed, restarts (restart policy), repeats
CRASHLOOP = "crashloop"  # exits 1 a few seconds after every start; restart=always keeps it looping
OOMED = "oomed"  # was OOM-killed before the simulation started; restart=no keeps it down
UNHEALTHY = "unhealthy"  # runs, but its healthcheck fails
STOPPED = "stopped"  # exited 0 a while ago (a finished job)
CREATED = "created"  # created, never started


@dataclass(frozen=True, slots=True)
class App:
    """A workload kind: what its containers look like and how heavy they are relative to each other."""

    name: str
    image: str  # "{tenant}" is replaced by the tenant name
    cmd: tuple[str, ...]
    cpu_weight: float  # relative CPU demand
    mem: int  # typical resident memory, bytes
    cache_frac: float  # page cache as a fraction of resident memory
    health: bool  # ships a healthcheck
    logs: tuple[str, ...]  # log line templates ({n} is a counter, {ms} a latency)
    env: tuple[str, ...] = ()


APPS: tuple[App, ...] = (
    App("web", "nginx:1.25-alpine", ("nginx", "-g", "daemon off;"), 0.3, 48 * MiB, 0.5, True,
        ('10.0.{n3}.{n4} - - "GET /healthz HTTP/1.1" 200 2 "-" "kube-probe/1.28"',
         '10.0.{n3}.{n4} - - "GET /api/v1/items?page={n3} HTTP/1.1" 200 {n} "-" "Mozilla/5.0"',
         '10.0.{n3}.{n4} - - "POST /api/v1/orders HTTP/1.1" 201 {n3} "-" "okhttp/4.12.0"'),
        ("NGINX_VERSION=1.25.3",)),
    App("api", "registry.example.com/{tenant}/api:2.4.1", ("/app/api", "--listen", ":8080"), 0.8, 320 * MiB, 0.2,
        True,
        ('level=info msg="request served" method=GET path=/v1/items status=200 duration={ms}ms',
         'level=info msg="request served" method=POST path=/v1/orders status=201 duration={ms}ms',
         'level=warn msg="slow query" table=orders duration={ms}ms'),
        ("GOMAXPROCS=4", "LOG_LEVEL=info")),
    App("worker", "registry.example.com/{tenant}/worker:2.4.1", ("python", "-m", "worker", "--concurrency", "4"), 1.0,
        512 * MiB, 0.15, False,
        ("INFO worker: job {n} done in {ms} ms", "INFO worker: picked job {n} from queue default",
         "WARNING worker: retrying job {n} (attempt 2/5)"),
        ("PYTHONUNBUFFERED=1",)),
    App("cache", "redis:7.2-alpine", ("redis-server", "--appendonly", "no"), 0.2, 256 * MiB, 0.05, True,
        ("1:M {ts} * {n} changes in 300 seconds. Saving...", "1:M {ts} * Background saving terminated with success"),
        ("REDIS_VERSION=7.2.4",)),
    App("db", "postgres:15.5", ("postgres",), 0.6, 1024 * MiB, 1.5, True,
        ("LOG:  checkpoint complete: wrote {n} buffers; write={ms}.001 s",
         "LOG:  duration: {ms}.412 ms  statement: SELECT * FROM orders WHERE id = {n}"),
        ("PGDATA=/var/lib/postgresql/data", "PG_MAJOR=15")),
    App("queue", "rabbitmq:3.12-management", ("rabbitmq-server",), 0.3, 384 * MiB, 0.3, True,
        ("[info] <0.{n}.0> accepting AMQP connection 10.0.{n3}.{n4}:5672",
         "[info] <0.{n}.0> closing AMQP connection 10.0.{n3}.{n4}:5672"),
        ("RABBITMQ_VERSION=3.12.12",)),
    App("cron", "alpine:3.19", ("crond", "-f", "-l", "8"), 0.02, 6 * MiB, 0.1, False,
        ("crond: USER root pid {n} cmd /etc/periodic/15min/report",), ()),
    App("metrics", "prom/node-exporter:v1.7.0", ("/bin/node_exporter", "--path.rootfs=/host"), 0.05, 24 * MiB, 0.1,
        False, ('ts={ts} caller=node_exporter.go:117 level=info collector=filesystem',), ()),
)
HOT_APP = App("encoder", "registry.example.com/{tenant}/encoder:5.0.2", ("encoder", "--threads", "0"), 1.0,
              900 * MiB, 0.4, False,
              ("frame={n} fps={n3} q=28.0 size={n}kB time=00:0{n4}:1{n4}.00 bitrate=2400.1kbits/s speed=1.0x",),
              ("ENCODER_PRESET=slow",))

OPERATING_SYSTEMS = {
    "1": ("Debian GNU/Linux 11 (bullseye)", "11", "5.10.0-28-amd64", "cgroupfs"),
    "2": ("Debian GNU/Linux 12 (bookworm)", "12", "6.1.0-18-amd64", "systemd"),
}
NODE_SIZES = ((8, 32 * GiB), (16, 64 * GiB), (32, 128 * GiB), (48, 192 * GiB), (64, 256 * GiB))


@dataclass(frozen=True, slots=True)
class Flap:
    """A node that goes away periodically: up for `up` s, then down for `down` s (down=inf: for good).

    mode: "refuse" (listener closed, stale socket: connection refused, like a crashed dockerd),
    "reset" (connections accepted and closed at once) or "hang" (accepted, never answered).
    """

    up: float
    down: float
    mode: str = "refuse"
    offset: float = 0.0  # seconds into the first up period at start


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    id: str
    name: str
    tenant: str
    app: str
    image: str
    cmd: tuple[str, ...]
    env: tuple[str, ...]
    labels: tuple[tuple[str, str], ...]
    role: str
    created_ago: float  # seconds before the node started
    started_ago: float | None  # seconds before the node started; None: never started
    finished_ago: float | None  # for containers that are not running at start
    exit_code: int
    restart_count: int
    restart_policy: str  # no | always | unless-stopped | on-failure
    max_retry: int
    nano_cpus: int  # 0 = unset
    cpu_quota: int  # 0 = unset (used instead of nano_cpus on some containers)
    cpu_period: int
    memory: int  # bytes, 0 = unlimited
    cpu_base: float  # cores demanded on average
    cpu_vol: float  # random-walk volatility
    mem_base: int  # resident bytes on average
    cache_base: int  # page cache bytes on average
    leak: int  # bytes per second (LEAK role)
    crash_after: float  # seconds of uptime before it exits (CRASHLOOP role)
    health_interval: float  # 0 = no healthcheck
    log_period: float  # seconds between log lines
    graceful: bool  # exits promptly on SIGTERM (else `stop` waits for its timeout, then SIGKILL)
    seed: str  # its load model's RNG seed

    @property
    def cpu_limit(self) -> float | None:
        if self.nano_cpus:
            return self.nano_cpus / 1e9
        if self.cpu_quota > 0:
            return self.cpu_quota / (self.cpu_period or 100_000)
        return None

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True, slots=True)
class NodeSpec:
    name: str
    index: int
    ncpu: int
    mem_total: int
    cgroup: str  # "1" | "2"
    operating_system: str
    os_version: str
    kernel: str
    cgroup_driver: str
    daemon_id: str
    labels: tuple[tuple[str, str], ...]
    uptime: float  # seconds the host had been up when the node started
    containers: tuple[ContainerSpec, ...]
    flap: Flap | None
    seed: str


@dataclass(frozen=True, slots=True)
class FleetLayout:
    seed: int
    nodes: tuple[NodeSpec, ...]
    tenants: tuple[str, ...]
    hot_tenant: str
    hot_node: str
    quotas: dict[str, tuple[float, int]] = field(default_factory=dict)  # tenant -> (cores, bytes)

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def containers(self, role: str | None = None) -> list[tuple[NodeSpec, ContainerSpec]]:
        return [(n, c) for n in self.nodes for c in n.containers if role is None or c.role == role]


def hex_id(rng: random.Random, nbytes: int = 32) -> str:
    return rng.getrandbits(nbytes * 8).to_bytes(nbytes, "big").hex()


def stable_id(*parts: object) -> str:
    """A 64-hex id derived from its parts (image ids, network ids: stable across runs and processes)."""
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()


def _daemon_id(rng: random.Random) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    return ":".join("".join(rng.choice(alphabet) for _ in range(4)) for _ in range(12))


def _round_mem_limit(value: float) -> int:
    step = 64 * MiB if value >= 256 * MiB else 16 * MiB
    return max(step, math.ceil(value / step) * step)


def _round_cpu_limit(value: float) -> float:
    return max(0.25, math.ceil(value * 4) / 4)


@dataclass(frozen=True, slots=True)
class FleetChoices:
    """The fleet-wide decisions, cheap to recompute in every node process."""

    tenants: tuple[str, ...]
    hot_tenant: str
    hot_index: int
    roles: dict[int, tuple[str, ...]]  # node index -> one-off roles placed there
    flap_index: int | None


def fleet_choices(nodes: int, seed: int, tenants: int = 5, flap: Flap | None = None) -> FleetChoices:
    if nodes < 1:
        raise ValueError("a fleet needs at least one node")
    rng = random.Random(f"berth-sim:{seed}")
    names = tuple(TENANTS[:max(1, min(tenants, len(TENANTS)))])
    hot_tenant = rng.choice(names)
    hot_index = 0
    flap_index = nodes - 1 if flap is not None and nodes >= 3 else None
    # The one-off characters live away from the hot node and the flapping node when there is room.
    others = [i for i in range(nodes) if i not in (hot_index, flap_index)] or [hot_index]
    roles: dict[int, list[str]] = {}
    for role in (LEAK, CRASHLOOP, OOMED, UNHEALTHY):
        roles.setdefault(others[rng.randrange(len(others))], []).append(role)
    return FleetChoices(names, hot_tenant, hot_index, {k: tuple(v) for k, v in roles.items()}, flap_index)


def plan_node(index: int, nodes: int, containers_per_node: int, seed: int = 0, cgroup: str = "1",
              tenants: int = 5, flap: Flap | None = None, name_prefix: str = "sim",
              choices: FleetChoices | None = None) -> NodeSpec:
    """One node of `plan_fleet(...)`, without planning the others (what a node process needs)."""
    if cgroup not in ("1", "2", "mixed"):
        raise ValueError(f"cgroup must be 1, 2 or mixed, not {cgroup!r}")
    if containers_per_node < 0 or not 0 <= index < nodes:
        raise ValueError("bad node index or container count")
    ch = choices or fleet_choices(nodes, seed, tenants, flap)
    flavour = ("1" if index % 2 == 0 else "2") if cgroup == "mixed" else cgroup
    return _plan_node(seed, index, containers_per_node, list(ch.tenants),
                      ch.hot_tenant if index == ch.hot_index else None, list(ch.roles.get(index, ())),
                      flavour, flap if index == ch.flap_index else None, name_prefix)


def plan_fleet(nodes: int, containers_per_node: int, seed: int = 0, cgroup: str = "1",
               tenants: int = 5, flap: Flap | None = None, name_prefix: str = "sim") -> FleetLayout:
    """The whole fleet, from the seed alone.

    cgroup: "1", "2" or "mixed" (alternating by node). `flap` applies to the last node
    when the fleet has at least three nodes (never to the hot node).
    """
    ch = fleet_choices(nodes, seed, tenants, flap)
    specs = [plan_node(i, nodes, containers_per_node, seed, cgroup, tenants, flap, name_prefix, ch)
             for i in range(nodes)]
    quotas = _quotas(specs, list(ch.tenants), ch.hot_tenant, random.Random(f"berth-sim:{seed}:quotas"))
    return FleetLayout(seed=seed, nodes=tuple(specs), tenants=ch.tenants, hot_tenant=ch.hot_tenant,
                       hot_node=specs[ch.hot_index].name, quotas=quotas)


def expected_usage(node: NodeSpec) -> dict[str, float]:
    """Cores each container of the node should get on average: its baseline within its limit, scaled
    down proportionally when the node is oversubscribed (what the daemon's contention model does)."""
    running = [c for c in node.containers if c.role not in (STOPPED, CREATED, OOMED)]
    want = {c.id: min(c.cpu_base, c.cpu_limit) if c.cpu_limit else c.cpu_base for c in running}
    total = sum(want.values())
    scale = min(1.0, node.ncpu * 0.97 / total) if total else 1.0
    return {cid: v * scale for cid, v in want.items()}


def _quotas(specs: list[NodeSpec], tenants: list[str], hot: str, rng: random.Random) -> dict[str, tuple[float, int]]:
    """Tenant quotas with headroom, except the hot tenant's, which its expected usage exceeds by ~40 %."""
    cpu = {t: 0.0 for t in tenants}
    mem = {t: 0 for t in tenants}
    for node in specs:
        usage = expected_usage(node)
        for c in node.containers:
            if c.id in usage:
                cpu[c.tenant] += usage[c.id]
                mem[c.tenant] += c.mem_base + c.cache_base
    out = {}
    for t in tenants:
        if t == hot:
            cores = max(1.0, math.floor(cpu[t] * 0.7))
        else:
            cores = max(1.0, math.ceil(cpu[t] * rng.uniform(1.4, 2.2)))
        out[t] = (float(cores), max(GiB, math.ceil(mem[t] * rng.uniform(1.3, 2.0) / GiB) * GiB))
    return out


def _plan_node(seed: int, index: int, count: int, tenants: list[str], hot_tenant: str | None, roles: list[str],
               cgroup: str, flap: Flap | None, prefix: str) -> NodeSpec:
    rng = random.Random(f"berth-sim:{seed}:node:{index}")
    ncpu, mem_total = NODE_SIZES[rng.randrange(1, len(NODE_SIZES))] if hot_tenant is None else NODE_SIZES[1]
    os_name, os_version, kernel, driver = OPERATING_SYSTEMS[cgroup]
    name = f"{prefix}-{index + 1:02d}"
    rack = f"r{index // 4 + 1}"
    node_seed = f"{seed}:{index}"

    # Baselines: a normal node runs at 25-55 % of its CPUs and 35-65 % of its memory;
    # the hot node's hot tenant alone asks for ~1.3x the node.
    cpu_target = ncpu * rng.uniform(0.25, 0.55)
    mem_target = mem_total * rng.uniform(0.35, 0.65)
    hot_count = max(1, count // 3) if hot_tenant and count else 0
    kinds: list[tuple[App, str, str]] = []  # (app, tenant, role)
    for k in range(count):
        if k < hot_count:
            kinds.append((HOT_APP, hot_tenant or tenants[0], HOT))
        else:
            kinds.append((APPS[rng.randrange(len(APPS))], tenants[rng.randrange(len(tenants))], NORMAL))
    # The one-off characters replace normal containers at random places.
    normal_slots = [k for k, (_, _, r) in enumerate(kinds) if r == NORMAL]
    rng.shuffle(normal_slots)
    extra = list(roles)
    if count >= 12:
        extra += [STOPPED, CREATED]
    for role, slot in zip(extra, normal_slots, strict=False):
        app, tenant, _ = kinds[slot]
        if role == LEAK:
            app = next(a for a in APPS if a.name == "worker")
        elif role == CRASHLOOP:
            app = next(a for a in APPS if a.name == "api")
        elif role == UNHEALTHY:
            app = next(a for a in APPS if a.health)
        kinds[slot] = (app, tenant, role)

    weights = [app.cpu_weight * rng.lognormvariate(0, 0.5) for app, _, role in kinds]
    normal_weight = sum(w for w, (_, _, r) in zip(weights, kinds, strict=True) if r != HOT) or 1.0
    mem_weights = [app.mem * rng.lognormvariate(0, 0.4) for app, _, _ in kinds]
    mem_scale = mem_target / (sum(mem_weights) or 1.0)
    counters: dict[tuple[str, str], int] = {}
    containers = []
    for k, ((app, tenant, role), weight) in enumerate(zip(kinds, weights, strict=True)):
        key = (tenant, app.name)
        counters[key] = counters.get(key, 0) + 1
        cname = f"{tenant}-{app.name}-{index + 1:02d}{counters[key]:02d}"
        if role == HOT:
            cpu_base = ncpu * 1.3 / hot_count * rng.uniform(0.8, 1.2)
        else:
            cpu_base = cpu_target * weight / normal_weight
        resident = mem_weights[k] * mem_scale / (1.0 + app.cache_frac)
        mem_base = int(min(max(resident, 4 * MiB), app.mem * 8))
        cache_base = int(mem_base * app.cache_frac * rng.uniform(0.5, 1.5))
        # Limits: most containers have them; a few run unlimited (the usual mess).
        nano_cpus = cpu_quota = 0
        cpu_period = 0
        r = rng.random()
        if role == HOT:
            if r < 0.5:
                nano_cpus = int(_round_cpu_limit(cpu_base * 1.5) * 1e9)
        elif r < 0.6:
            nano_cpus = int(_round_cpu_limit(cpu_base * rng.uniform(1.5, 3.0)) * 1e9)
        elif r < 0.75:
            cpu_period = 100_000
            cpu_quota = int(_round_cpu_limit(cpu_base * rng.uniform(1.5, 3.0)) * cpu_period)
        memory = 0
        if rng.random() < 0.8 or role in (LEAK, OOMED):
            memory = _round_mem_limit((mem_base + cache_base) * rng.uniform(1.6, 3.0))
        policy, retries = rng.choice((("unless-stopped", 0), ("always", 0), ("unless-stopped", 0),
                                      ("on-failure", 5), ("no", 0)))
        if role in (LEAK, CRASHLOOP):
            policy, retries = "always", 0
        elif role == OOMED or role == STOPPED:
            policy, retries = "no", 0
        created_ago = rng.uniform(3600, 40 * 86400)
        started_ago: float | None = created_ago - rng.uniform(5, min(created_ago - 1, 3600))
        if rng.random() < 0.3:
            started_ago = rng.uniform(60, created_ago)  # restarted since (deploy, reboot)
        finished_ago: float | None = None
        exit_code = 0
        restart_count = 0
        leak = 0
        crash_after = 0.0
        if role == STOPPED:
            finished_ago = rng.uniform(30, max(31.0, started_ago or 31.0))
        elif role == CREATED:
            started_ago = None
        elif role == OOMED:
            finished_ago = rng.uniform(120, 1800)
            started_ago = finished_ago + rng.uniform(600, 7200)
            created_ago = max(created_ago, started_ago + 60)
            exit_code = 137
            restart_count = 0
        elif role == LEAK:
            # Reaches its limit 40-90 s after each start.
            leak = int(max(memory - mem_base - cache_base, 16 * MiB) / rng.uniform(40, 90))
            restart_count = rng.randrange(3, 12)
            started_ago = rng.uniform(1, 10)
        elif role == CRASHLOOP:
            crash_after = rng.uniform(11.0, 14.0)  # >= 10 s of uptime resets dockerd's backoff
            restart_count = rng.randrange(30, 90)
            started_ago = rng.uniform(0.5, 5)
        labels = {TENANT_LABEL: tenant, "app": app.name, "com.example.team": f"{tenant}-{app.name}"}
        if role == HOT:
            labels["com.example.tier"] = "batch"
        health = app.health and role not in (HOT,)
        containers.append(ContainerSpec(
            id=hex_id(rng), name=cname, tenant=tenant, app=app.name,
            image=app.image.format(tenant=tenant), cmd=app.cmd, env=app.env,
            labels=tuple(sorted(labels.items())), role=role,
            created_ago=created_ago, started_ago=started_ago, finished_ago=finished_ago,
            exit_code=exit_code, restart_count=restart_count, restart_policy=policy, max_retry=retries,
            nano_cpus=nano_cpus, cpu_quota=cpu_quota, cpu_period=cpu_period, memory=memory,
            cpu_base=cpu_base, cpu_vol=0.06 if role != HOT else 0.04, mem_base=mem_base, cache_base=cache_base,
            leak=leak, crash_after=crash_after,
            health_interval=rng.choice((5.0, 10.0, 15.0)) if health or role == UNHEALTHY else 0.0,
            log_period=rng.uniform(1.0, 20.0), graceful=rng.random() < 0.85,
            seed=f"{node_seed}:{k}",
        ))
    return NodeSpec(
        name=name, index=index, ncpu=ncpu, mem_total=mem_total, cgroup=cgroup, operating_system=os_name,
        os_version=os_version, kernel=kernel, cgroup_driver=driver, daemon_id=_daemon_id(rng),
        labels=(("rack", rack), ("sim", "true")), uptime=rng.uniform(2 * 86400, 200 * 86400),
        containers=tuple(containers), flap=flap, seed=node_seed,
    )


def app_named(name: str) -> App | None:
    return next((a for a in (*APPS, HOT_APP) if a.name == name), None)


def app_for_image(image: str) -> App | None:
    """The app whose image this is (any tenant's, any tag), e.g. a migrated container's."""
    for app in (*APPS, HOT_APP):
        repo = app.image.split("{tenant}")[-1].split(":")[0]
        if repo and repo in image:
            return app
    return None


def default_spec_for(image: str, cid: str, node_seed: str) -> tuple[App | None, float, int, int, float]:
    """(app, cpu_base, mem_base, cache_base, log_period) for a container created through the API.

    A known app image gets that app's profile, anything else a light idle load and no output.
    """
    rng = random.Random(f"{node_seed}:created:{cid}")
    app = app_for_image(image)
    if app is not None:
        mem = int(app.mem * rng.uniform(0.6, 1.4))
        return app, app.cpu_weight * rng.uniform(0.2, 0.6), mem, int(mem * app.cache_frac), rng.uniform(2, 20)
    return None, rng.uniform(0.001, 0.02), int(rng.uniform(0.3, 2.0) * MiB), int(rng.uniform(0, 0.5) * MiB), 0.0


class Load:
    """One container's demand: a mean-reverting random walk around its baselines, with bursts.

    `step()` is one simulated second; it draws the same number of random values every
    time, so a given seed produces the same sequence however the steps are timed.
    """

    __slots__ = (
        "burst",
        "burst_left",
        "cache",
        "cache_base",
        "cpu_base",
        "cpu_vol",
        "leak",
        "mem",
        "mem_base",
        "rng",
        "x",
    )

    def __init__(self, seed: str, cpu_base: float, cpu_vol: float, mem_base: int, cache_base: int,
                 leak: int = 0) -> None:
        self.rng = random.Random(seed)
        self.cpu_base = cpu_base
        self.cpu_vol = cpu_vol
        self.mem_base = mem_base
        self.cache_base = cache_base
        self.leak = leak
        self.x = 1.0
        self.mem = float(mem_base)
        self.cache = float(cache_base)
        self.burst = 1.0
        self.burst_left = 0

    def reset(self) -> None:
        """A fresh process: memory back to baseline (after an OOM kill or a restart)."""
        self.mem = float(self.mem_base) * 0.7
        self.cache = float(self.cache_base) * 0.3
        self.x = 1.0

    def step(self) -> None:
        g_cpu, g_mem, g_cache, u = (self.rng.gauss(0.0, 1.0), self.rng.gauss(0.0, 1.0),
                                    self.rng.gauss(0.0, 1.0), self.rng.random())
        self.x += 0.12 * (1.0 - self.x) + self.cpu_vol * 2.5 * g_cpu
        self.x = min(max(self.x, 0.05), 4.0)
        if self.burst_left > 0:
            self.burst_left -= 1
            if self.burst_left == 0:
                self.burst = 1.0
        elif u < 0.01:
            self.burst = 1.5 + u * 150  # 1.5x .. 3x
            self.burst_left = 3 + int(u * 700)  # 3 .. 10 s
        if self.leak:  # a leak only grows, until the kernel's OOM killer ends it
            self.mem += self.leak * (1.0 + 0.2 * g_mem)
        else:
            self.mem += 0.05 * (self.mem_base - self.mem) + 0.004 * self.mem_base * g_mem
        self.mem = max(self.mem, self.mem_base * 0.3)
        self.cache += 0.03 * (self.cache_base - self.cache) + 0.01 * (self.cache_base + MiB) * g_cache
        self.cache = max(self.cache, 0.0)

    @property
    def cpu_demand(self) -> float:
        return self.cpu_base * self.x * self.burst
