"""One simulated Docker daemon: containers, networks, events and stats, as dockerd 20.10 keeps them.

This is the state machine behind the HTTP server (`console.sim.server`): it
answers in Engine API documents (dicts shaped field for field like dockerd's,
recorded from a real 20.10 daemon) and raises `ApiError` with dockerd's status
codes and messages. Time-based behaviour (load, OOM kills, restart loops,
health checks, stats sampling) runs off a 1 Hz tick on the node's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import shlex
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from console.sim import model, samples
from console.sim.model import ContainerSpec, Load, NodeSpec, stable_id
from console.sim.samples import NS, ZERO_TIME
from console.sim.storage import Storage

API_VERSION = "1.41"
MIN_API_VERSION = "1.12"
# What `berth sim --api-version` may serve: 1.41 (dockerd 20.10, the reference) up to the newest
# published Engine API whose shape changes the simulator knows (see EngineServer.shape_event).
NEWEST_API_VERSION = "1.52"


def parse_sim_api_version(text: str) -> str:
    """"1.N" within what the simulator serves, else ValueError with one line."""
    m = re.fullmatch(r"1\.([0-9]{2})", text.strip())
    newest = int(NEWEST_API_VERSION.split(".")[1])
    if not m or not 41 <= int(m.group(1)) <= newest:
        raise ValueError(f"--api-version {text!r}: the simulator serves API 1.41 to {NEWEST_API_VERSION}")
    return f"1.{int(m.group(1))}"
ENGINE_VERSION = "20.10.24"
EVENT_RING = 256  # dockerd 20.10 keeps the last 256 events (daemon/events: eventsLimit), not 1000
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

SIGNALS = {"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7, "FPE": 8, "KILL": 9,
           "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16, "CHLD": 17,
           "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25,
           "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29, "PWR": 30, "SYS": 31}
_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
_LIST_FILTERS = {"ancestor", "before", "expose", "exited", "health", "id", "isolation", "is-task", "label", "name",
                 "network", "publish", "since", "status", "volume"}
_NETWORK_FILTERS = {"dangling", "driver", "id", "label", "name", "scope", "type"}
_ADJECTIVES = ("admiring", "brave", "clever", "dazzling", "eager", "festive", "gifted", "happy", "jolly", "keen",
               "loving", "modest", "nifty", "quirky", "serene", "stoic", "tender", "vibrant", "wizardly", "zealous")
_SURNAMES = ("albattani", "bell", "curie", "darwin", "euler", "fermi", "galileo", "hopper", "jepsen", "knuth",
             "lovelace", "meitner", "newton", "pike", "ritchie", "shannon", "tesla", "turing", "wozniak", "yalow")


class ApiError(Exception):
    """An Engine API error: HTTP status and dockerd's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class NotModified(Exception):
    """304: the container is already in the requested state."""


def rfc3339(ns: int | None) -> str:
    """Go's time.RFC3339Nano in UTC (trailing zeros of the fraction dropped)."""
    if not ns:
        return ZERO_TIME
    sec, frac = divmod(int(ns), NS)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{base}.{frac:09d}".rstrip("0") + "Z" if frac else base + "Z"


def human_duration(seconds: float) -> str:
    """docker's units.HumanDuration, as in "Up 3 minutes"."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def parse_filters(raw: str | None) -> dict[str, list[str]]:
    """The `filters` query parameter in both encodings docker clients send:
    {"k": ["v"]} and the older {"k": {"v": true}}."""
    if not raw:
        return {}
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(500, _go_json_error(raw)) from exc
    if not isinstance(doc, dict):
        raise ApiError(500, "json: cannot unmarshal into Go value of type map[string]map[string]bool")
    out: dict[str, list[str]] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            out[key] = [k for k, v in value.items() if v]
        elif isinstance(value, list):
            out[key] = [str(v) for v in value]
        else:
            raise ApiError(500, "json: cannot unmarshal into Go value of type map[string]bool")
    return out


def _go_json_error(raw: str) -> str:
    stripped = raw.lstrip()
    return f"invalid character '{stripped[:1]}' looking for beginning of value" if stripped else "unexpected end of JSON input"


def _regex_match(patterns: list[str], value: str) -> bool:
    """filters.Args.Match: exact, or the pattern as a regular expression found in the value."""
    for p in patterns:
        if p == value:
            return True
        try:
            if re.search(p, value):
                return True
        except re.error:
            continue
    return False


def _fuzzy(patterns: list[str], value: str) -> bool:
    """filters.Args.FuzzyMatch: exact or prefix."""
    return any(value == p or value.startswith(p) for p in patterns)


def _match_labels(wanted: list[str], labels: Mapping[str, str]) -> bool:
    """filters.Args.MatchKVList: every "key" or "key=value" must hold."""
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _check_filters(filters: Mapping[str, list[str]], allowed: set[str]) -> None:
    for key in filters:
        if key not in allowed:
            raise ApiError(400, f"Invalid filter '{key}'")


_go_json = samples.go_json


@dataclass(slots=True)
class Image:
    ref: str
    id: str
    env: tuple[str, ...]
    cmd: tuple[str, ...]
    created: int  # unix seconds
    size: int


@dataclass(slots=True)
class Endpoint:
    endpoint_id: str
    mac: str
    ip: str
    aliases: list[str] | None
    ipam_config: dict[str, Any] | None


@dataclass(slots=True)
class Network:
    id: str
    name: str
    driver: str
    created_ns: int
    subnet: str
    gateway: str
    internal: bool = False
    attachable: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    ipam_options: dict[str, str] | None = None
    enable_ipv6: bool = False
    builtin: bool = False
    endpoints: dict[str, Endpoint] = field(default_factory=dict)  # container id -> endpoint of a running container
    next_host: int = 2

    @property
    def prefix_len(self) -> int:
        return int(self.subnet.split("/")[1]) if "/" in self.subnet else 0

    def allocate(self, wanted: str | None) -> str:
        if not self.subnet:
            return ""
        if wanted:
            return wanted
        base = [int(x) for x in self.subnet.split("/")[0].split(".")]
        used = {e.ip for e in self.endpoints.values()}
        while True:
            host = self.next_host
            self.next_host += 1
            ip = f"{base[0]}.{base[1]}.{base[2] + host // 256}.{host % 256}"
            if ip not in used and host % 256 not in (0, 255):
                return ip


class Container:
    """One container's mutable state."""

    def __init__(self, cid: str, name: str, image: Image, image_ref: str, cmd: list[str], entrypoint: list[str] | None,
                 env: list[str], labels: dict[str, str], host_config: dict[str, Any], created_ns: int, load: Load,
                 *, tty: bool = False, healthcheck: dict[str, Any] | None = None, role: str = model.NORMAL,
                 graceful: bool = True, crash_after: float = 0.0, log_period: float = 0.0,
                 log_lines: tuple[str, ...] = (), extra_config: dict[str, Any] | None = None) -> None:
        self.id = cid
        self.name = name  # without the leading '/'
        self.image = image
        self.image_ref = image_ref
        self.cmd = cmd
        self.entrypoint = entrypoint
        self.env = env
        self.labels = labels
        self.host_config = host_config
        self.created_ns = created_ns
        self.load = load
        self.tty = tty
        self.healthcheck = healthcheck
        self.role = role
        self.graceful = graceful
        self.crash_after = crash_after
        self.log_period = log_period
        self.log_lines = log_lines
        self.extra_config = extra_config or {}
        self.state = "created"  # created | running | paused | restarting | exited | dead | removing
        self.pid = 0
        self.exit_code = 0
        self.oom_killed = False
        self.error = ""
        self.started_ns = 0
        self.finished_ns = 0
        self.restart_count = 0
        self.manually_stopped = False
        self.backoff = 0.0
        self.restart_handle: asyncio.TimerHandle | None = None
        self.exit_handle: asyncio.TimerHandle | None = None
        self.run_started = 0.0  # time.time() of the current run, for uptime-based behaviour
        # health
        self.health_status = "starting" if healthcheck else ""
        self.failing_streak = 0
        self.health_log: deque[dict[str, Any]] = deque(maxlen=5)
        self.last_check = 0.0
        # networks: name -> endpoint settings (kept while stopped, like dockerd)
        self.networks: dict[str, dict[str, Any]] = {}
        # accounting
        self.cpu_ns = 0.0
        self.usage = 0.0  # cores, current
        self.demand = 0.0
        self.periods = 0.0
        self.throttled = 0.0
        self.throttled_ns = 0.0
        self.max_usage = 0
        self.pgfault = 0.0
        self.io_read = 0.0
        self.io_write = 0.0
        self.net_rx = 0.0
        self.net_tx = 0.0
        rng = random.Random(cid)
        self.percpu_weights: list[float] = []
        self.kernel_frac = rng.uniform(0.1, 0.35)
        self.io_rate = rng.uniform(0, 2e5)
        self.net_rate = rng.uniform(1e3, 5e5)
        self.pid_base = rng.randrange(2000, 60000)
        self.nprocs = rng.randrange(1, 9)
        self.stats_template: samples.StatsTemplate | None = None
        # logs: run segments (start_ns, end_ns or 0 while running)
        self.runs: deque[tuple[int, int]] = deque(maxlen=20)
        self.lock = asyncio.Lock()
        self.exited = asyncio.Event()  # set while not running; a new one per run
        self.removed = asyncio.Event()
        self.exit_waiters: list[asyncio.Future[int]] = []  # POST /wait

    # -- derived -------------------------------------------------------------

    @property
    def running(self) -> bool:
        """dockerd's State.Running: true while running, paused or restarting."""
        return self.state in ("running", "paused", "restarting")

    @property
    def cpu_limit(self) -> float | None:
        nano = self.host_config.get("NanoCpus") or 0
        if nano:
            return nano / 1e9
        quota, period = self.host_config.get("CpuQuota") or 0, self.host_config.get("CpuPeriod") or 0
        if quota > 0:
            return quota / (period or 100_000)
        return None

    @property
    def mem_limit(self) -> int:
        return int(self.host_config.get("Memory") or 0)

    @property
    def path_args(self) -> tuple[str, list[str]]:
        argv = list(self.entrypoint or []) + list(self.cmd or [])
        return (argv[0], argv[1:]) if argv else ("", [])

    def command_line(self) -> str:
        path, args = self.path_args
        return " ".join([path, *(shlex.quote(a) for a in args)]) if args else path

    def status_text(self, now: float) -> str:
        """State.String() of dockerd: the STATUS column of `docker ps`."""
        if self.state == "paused":
            return f"Up {human_duration(now - self.started_ns / NS)} (Paused)"
        if self.state == "restarting":
            return f"Restarting ({self.exit_code}) {human_duration(now - self.finished_ns / NS)} ago"
        if self.state == "running":
            up = human_duration(now - self.started_ns / NS)
            if self.healthcheck:
                health = "health: starting" if self.health_status == "starting" else self.health_status
                return f"Up {up} ({health})"
            return f"Up {up}"
        if self.state == "removing":
            return "Removal In Progress"
        if self.state == "dead":
            return "Dead"
        if not self.started_ns:
            return "Created"
        if not self.finished_ns:
            return ""
        return f"Exited ({self.exit_code}) {human_duration(now - self.finished_ns / NS)} ago"

    def cpu_total(self, now: float, last_tick: float) -> int:
        if self.state == "running":
            return int(self.cpu_ns + self.usage * max(0.0, now - last_tick) * 1e9)
        return int(self.cpu_ns)


class _EventSub:
    __slots__ = ("accept", "queue")

    def __init__(self, accept: Callable[[dict[str, Any]], bool]) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1024)
        self.accept = accept


class StatsSink(Protocol):
    """A stats reader the tick pushes to (the server writes each sample straight to its socket)."""

    def offer(self, sample: samples.Sample) -> None: ...

    def end(self) -> None: ...


class SimDaemon:
    """The node: build it from a NodeSpec, `await start()` it on a loop, then serve it."""

    def __init__(self, spec: NodeSpec, ring_size: int = EVENT_RING, tick: float = 1.0) -> None:
        self.spec = spec
        self.name = spec.name
        self.tick_interval = tick
        self.api_version = API_VERSION  # the newest API this node serves (`berth sim --api-version`)
        self.containers: dict[str, Container] = {}
        self.networks: dict[str, Network] = {}
        self.images: dict[str, Image] = {}
        self.ring: deque[tuple[int, dict[str, Any], bytes]] = deque(maxlen=ring_size)
        self._event_subs: set[_EventSub] = set()
        self._stats_subs: dict[str, set[StatsSink]] = {}
        self._last_event_ns = 0
        self._rng = random.Random(f"berth-sim:{spec.seed}:daemon")
        self._ticker: asyncio.Task[None] | None = None
        self.started = time.time()
        self.last_tick = self.started
        self._next_subnet = 18
        self._build()
        self.storage = Storage(self)  # files, volumes, image layers (console.sim.storage)

    # -- construction ----------------------------------------------------------

    def _image(self, ref: str, env: tuple[str, ...] = (DEFAULT_PATH,), cmd: tuple[str, ...] = ()) -> Image:
        ref = ref if ":" in ref.rsplit("/", 1)[-1] else f"{ref}:latest"
        if ref not in self.images:
            digest = stable_id("image", ref)
            self.images[ref] = Image(ref, f"sha256:{digest}", env, cmd, int(self.started - 90 * 86400),
                                     5_000_000 + int(digest[:6], 16) * 10)
        return self.images[ref]

    def _build(self) -> None:
        spec = self.spec
        self._image("berth/busybox:test", env=("PATH=/bin",), cmd=("/bin/sh",))  # as the lab imports it
        self._image("alpine:3.19", cmd=("/bin/sh",))
        for builtin, driver, subnet, gateway in (("bridge", "bridge", "172.17.0.0/16", "172.17.0.1"),
                                                 ("host", "host", "", ""), ("none", "null", "", "")):
            net = Network(id=stable_id(spec.seed, "network", builtin), name=builtin, driver=driver,
                          created_ns=int((self.started - 3600) * NS), subnet=subnet, gateway=gateway, builtin=True)
            if builtin == "bridge":
                net.options = {"com.docker.network.bridge.default_bridge": "true",
                               "com.docker.network.bridge.enable_icc": "true",
                               "com.docker.network.bridge.enable_ip_masquerade": "true",
                               "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                               "com.docker.network.bridge.name": "docker0",
                               "com.docker.network.driver.mtu": "1500"}
            self.networks[net.id] = net
        for cs in spec.containers:
            self._adopt(cs)

    def _adopt(self, cs: ContainerSpec) -> None:
        """A container that existed before the simulation started, in the state its role says."""
        app = model.app_named(cs.app)
        image = self._image(cs.image, env=(DEFAULT_PATH, *cs.env), cmd=cs.cmd)
        hc = self._host_config({
            "NanoCpus": cs.nano_cpus, "CpuQuota": cs.cpu_quota, "CpuPeriod": cs.cpu_period, "Memory": cs.memory,
            "RestartPolicy": {"Name": cs.restart_policy, "MaximumRetryCount": cs.max_retry},
        })
        health = None
        if cs.health_interval:
            health = {"Test": ["CMD-SHELL", "wget -qO- http://127.0.0.1/healthz || exit 1"],
                      "Interval": int(cs.health_interval * NS), "Timeout": 3 * NS, "Retries": 3}
        load = Load(cs.seed, cs.cpu_base, cs.cpu_vol, cs.mem_base, cs.cache_base, cs.leak)
        c = Container(cs.id, cs.name, image, cs.image, list(cs.cmd), None, list(image.env), cs.label_map, hc,
                      int((self.started - cs.created_ago) * NS), load, healthcheck=health, role=cs.role,
                      graceful=cs.graceful, crash_after=cs.crash_after, log_period=cs.log_period,
                      log_lines=app.logs if app else ())
        c.restart_count = cs.restart_count
        c.networks["bridge"] = self._endpoint_settings(self._network("bridge"), None, None)
        self.containers[c.id] = c
        if cs.started_ago is not None:
            c.started_ns = int((self.started - cs.started_ago) * NS)
            c.runs.append((c.started_ns, 0))
        if cs.role in (model.STOPPED, model.OOMED):
            c.state = "exited"
            c.exit_code = cs.exit_code
            c.oom_killed = cs.role == model.OOMED
            c.finished_ns = int((self.started - (cs.finished_ago or 0)) * NS)
            c.manually_stopped = cs.role == model.STOPPED
            c.runs[-1] = (c.started_ns, c.finished_ns)
            c.exited.set()
        elif cs.role == model.CREATED:
            c.state = "created"
        else:
            c.state = "running"
            c.pid = c.pid_base
            c.run_started = self.started - (cs.started_ago or 0)
            c.health_status = "healthy" if health else ""
            c.cpu_ns = cs.cpu_base * 0.8 * min(cs.started_ago or 0, 86400 * 3) * 1e9
            self._attach(c)

    @staticmethod
    def _host_config(user: Mapping[str, Any]) -> dict[str, Any]:
        """A full HostConfig as dockerd 20.10 returns it, with the user's settings over the defaults."""
        hc: dict[str, Any] = {
            "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
            "NetworkMode": "default", "PortBindings": {}, "RestartPolicy": {"Name": "", "MaximumRetryCount": 0},
            "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None, "CapAdd": None, "CapDrop": None,
            "CgroupnsMode": "host", "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": None,
            "GroupAdd": None, "IpcMode": "private", "Cgroup": "", "Links": None, "OomScoreAdj": 0, "PidMode": "",
            "Privileged": False, "PublishAllPorts": False, "ReadonlyRootfs": False, "SecurityOpt": None,
            "UTSMode": "", "UsernsMode": "", "ShmSize": 67108864, "Runtime": "runc", "ConsoleSize": [0, 0],
            "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0,
            "BlkioWeightDevice": [], "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [],
            "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [], "CpuPeriod": 0, "CpuQuota": 0,
            "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "", "Devices": [],
            "DeviceCgroupRules": None, "DeviceRequests": None, "KernelMemory": 0, "KernelMemoryTCP": 0,
            "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": None, "OomKillDisable": False,
            "PidsLimit": None, "Ulimits": [], "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
            "IOMaximumBandwidth": 0,
            "MaskedPaths": ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                            "/sys/firmware"],
            "ReadonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        }
        for key, value in user.items():
            if key in hc and value is not None:
                hc[key] = value
        if user.get("Init") is not None:
            hc["Init"] = bool(user["Init"])  # a *bool with omitempty: present only when set
        if not hc["NetworkMode"]:
            hc["NetworkMode"] = "default"
        if hc["RestartPolicy"] is None:
            hc["RestartPolicy"] = {"Name": "", "MaximumRetryCount": 0}
        if hc["Memory"] and not hc["MemorySwap"]:
            hc["MemorySwap"] = hc["Memory"] * 2  # dockerd's default: swap limit = 2x memory
        return hc

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Begin ticking on the running loop (schedules the restart loop, OOMs, health...)."""
        self.last_tick = time.time()
        # The fleet was running before we looked: CPU counters move from the first read on, as a
        # real node's do (a one-shot sample before the first tick must not see everyone idle).
        self._share_cpu([c for c in self.containers.values() if c.state == "running"])
        self._ticker = asyncio.create_task(self._tick_loop(), name=f"sim:{self.name}:tick")

    async def close(self) -> None:
        if self._ticker:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for c in self.containers.values():
            for handle in (c.restart_handle, c.exit_handle):
                if handle:
                    handle.cancel()
        for sub in list(self._event_subs):
            _offer(sub.queue, None)
        for subs in self._stats_subs.values():
            for ssub in list(subs):
                ssub.end()

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + self.tick_interval
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at += self.tick_interval
            if next_at < loop.time():  # fell behind (suspended): do not replay missed ticks in a burst
                next_at = loop.time() + self.tick_interval
            self.tick(time.time())

    def tick(self, now: float) -> None:
        """One simulated second: integrate CPU, step every load, apply limits and contention, fire
        behaviours (OOM, crash, health), then publish a stats sample to every stats subscriber."""
        dt = max(0.0, now - self.last_tick)
        running = [c for c in self.containers.values() if c.state == "running"]
        for c in running:
            c.cpu_ns += c.usage * dt * 1e9
            if c.cpu_limit:
                c.periods += 10 * dt
                if c.demand > c.cpu_limit:
                    c.throttled += 10 * dt
                    c.throttled_ns += (c.demand - c.cpu_limit) * dt * 1e9
            c.pgfault += dt * (50 + c.load.mem_base / 1e6)
            c.io_read += dt * c.io_rate
            c.io_write += dt * c.io_rate * 0.6
            c.net_rx += dt * c.net_rate * max(0.2, c.load.x)
            c.net_tx += dt * c.net_rate * 0.7 * max(0.2, c.load.x)
        self.last_tick = now
        for c in running:
            c.load.step()
        self._share_cpu(running)
        for c in running:
            self._behave(c, now)
        if self._stats_subs:
            read, system = rfc3339(int(now * NS)).encode(), self.system_cpu(now)
            for cid, subs in list(self._stats_subs.items()):
                watched = self.containers.get(cid)
                if watched is None or not subs:
                    continue
                sample = self.render_stats(watched, now, read, system)
                for sub in list(subs):
                    sub.offer(sample)

    def _share_cpu(self, running: list[Container]) -> None:
        """Each running container's CPU use (cores) from its load's demand, its limit and the node's size."""
        wanted = 0.0
        for c in running:
            demand = c.load.cpu_demand
            limit = c.cpu_limit
            c.demand = demand
            c.usage = min(demand, limit) if limit else demand
            wanted += c.usage
        ncpu = self.spec.ncpu
        if wanted > ncpu * 0.97:  # the node is saturated: everyone gets a proportional share
            scale = ncpu * 0.97 / wanted
            for c in running:
                c.usage *= scale

    def _behave(self, c: Container, now: float) -> None:
        limit = c.mem_limit
        if limit:
            rss = c.load.mem
            if rss + c.load.cache > limit:  # the kernel reclaims page cache before it kills
                c.load.cache = max(0.0, limit - rss)
            if rss >= limit * 0.985:
                self._emit_container(c, "oom")
                self._exit(c, 137, oom=True)
                return
        if c.crash_after and now - c.run_started >= c.crash_after:
            self._exit(c, 1)
            return
        if c.healthcheck and now - c.last_check >= c.healthcheck["Interval"] / NS:
            self._health_check(c, now)

    def _health_check(self, c: Container, now: float) -> None:
        c.last_check = now
        ok = c.role != model.UNHEALTHY
        start = int(now * NS)
        c.health_log.append({"Start": rfc3339(start), "End": rfc3339(start + 41_000_000),
                             "ExitCode": 0 if ok else 1,
                             "Output": "" if ok else "wget: server returned error: HTTP/1.1 503 Service Unavailable\n"})
        before = c.health_status
        if ok:
            c.failing_streak = 0
            c.health_status = "healthy"
        else:
            c.failing_streak += 1
            if c.failing_streak >= int((c.healthcheck or {}).get("Retries") or 3):
                c.health_status = "unhealthy"
        if c.health_status != before:
            self._emit_container(c, f"health_status: {c.health_status}")

    # -- events ----------------------------------------------------------------

    def _now_ns(self) -> int:
        ns = time.time_ns()
        if ns <= self._last_event_ns:
            ns = self._last_event_ns + 1
        self._last_event_ns = ns
        return ns

    def _emit(self, doc: dict[str, Any], ns: int) -> None:
        raw = _go_json(doc)
        self.ring.append((ns, doc, raw))
        for sub in list(self._event_subs):
            if sub.accept(doc):
                _offer(sub.queue, raw)

    def _emit_container(self, c: Container, action: str, **extra: str) -> None:
        attrs = dict(c.labels)
        attrs.update(image=c.image_ref, name=c.name)
        attrs.update(extra)
        ns = self._now_ns()
        self._emit({"status": action, "id": c.id, "from": c.image_ref, "Type": "container", "Action": action,
                    "Actor": {"ID": c.id, "Attributes": dict(sorted(attrs.items()))},
                    "scope": "local", "time": ns // NS, "timeNano": ns}, ns)

    def _emit_network(self, net: Network, action: str, container: str | None = None) -> None:
        attrs = {"name": net.name, "type": net.driver}
        if container:
            attrs["container"] = container
        ns = self._now_ns()
        self._emit({"Type": "network", "Action": action,
                    "Actor": {"ID": net.id, "Attributes": dict(sorted(attrs.items()))},
                    "scope": "local", "time": ns // NS, "timeNano": ns}, ns)

    @staticmethod
    def event_filter(filters: Mapping[str, list[str]]) -> Callable[[dict[str, Any]], bool]:
        """daemon/events/filter.go: every given filter must match."""
        def accept(ev: dict[str, Any]) -> bool:
            actor = ev.get("Actor") or {}
            attrs = actor.get("Attributes") or {}
            kind = ev.get("Type", "")
            action = ev.get("Action", "")
            if "type" in filters and kind not in filters["type"]:
                return False
            if "event" in filters:
                wanted = filters["event"]
                if any(w in ("health_status", "exec_create", "exec_start") for w in wanted):
                    if not _fuzzy(wanted, action):
                        return False
                elif action not in wanted:
                    return False
            if "container" in filters and not (kind == "container" and (
                    _fuzzy(filters["container"], actor.get("ID", "")) or
                    _fuzzy(filters["container"], attrs.get("name", "")))):
                return False
            if "network" in filters and not (kind == "network" and (
                    _fuzzy(filters["network"], actor.get("ID", "")) or
                    _fuzzy(filters["network"], attrs.get("name", "")))):
                return False
            if "image" in filters and not any(attrs.get("image") == i or
                                              attrs.get("image", "").split(":")[0] == i
                                              for i in filters["image"]):
                return False
            return not ("label" in filters and not _match_labels(filters["label"], attrs))
        return accept

    def past_events(self, since_ns: int | None, until_ns: int | None,
                    accept: Callable[[dict[str, Any]], bool]) -> list[bytes]:
        """events.loadBufferedEvents: nothing without since/until; else ring events with
        since <= timeNano (<= until when given)."""
        if since_ns is None and until_ns is None:
            return []
        out = []
        for ns, doc, raw in self.ring:
            if since_ns is not None and ns < since_ns:
                continue
            if until_ns is not None and ns > until_ns:
                continue
            if accept(doc):
                out.append(raw)
        return out

    def subscribe_events(self, accept: Callable[[dict[str, Any]], bool]) -> _EventSub:
        sub = _EventSub(accept)
        self._event_subs.add(sub)
        return sub

    def unsubscribe_events(self, sub: _EventSub) -> None:
        self._event_subs.discard(sub)

    # -- lookup ----------------------------------------------------------------

    def lookup(self, ref: str) -> Container:
        """dockerd's GetContainer: full id, then name, then unique id prefix."""
        if ref in self.containers:
            return self.containers[ref]
        name = ref.lstrip("/")
        for c in self.containers.values():
            if c.name == name:
                return c
        if ref:
            found = [c for cid, c in self.containers.items() if cid.startswith(ref)]
            if len(found) > 1:
                raise ApiError(400, f"multiple IDs found with provided prefix: {ref}")
            if found:
                return found[0]
        raise ApiError(404, f"No such container: {ref}")

    def _net_by_name(self, name: str) -> Network | None:
        return next((n for n in self.networks.values() if n.name == name), None)

    def _network(self, ref: str) -> Network:
        for net in self.networks.values():
            if net.id == ref or net.name == ref:
                return net
        found = [n for n in self.networks.values() if ref and n.id.startswith(ref)]
        if len(found) == 1:
            return found[0]
        raise ApiError(404, f"network {ref} not found")

    # -- system ----------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        s = self.spec
        details = {"ApiVersion": self.api_version, "Arch": "amd64", "BuildTime": "2023-04-04T00:00:00.000000000+00:00",
                   "Experimental": "false", "GitCommit": "5d6db84", "GoVersion": "go1.19.8",
                   "KernelVersion": s.kernel, "MinAPIVersion": MIN_API_VERSION, "Os": "linux"}
        return {
            "Platform": {"Name": "Berth simulated Docker Engine"},
            "Components": [
                {"Name": "Engine", "Version": ENGINE_VERSION, "Details": details},
                {"Name": "containerd", "Version": "1.6.20", "Details": {"GitCommit": "2806fc1057397dbaeefbea0e4e17bddfbd388f38"}},
                {"Name": "runc", "Version": "1.1.5", "Details": {"GitCommit": "v1.1.5-0-gf19387a"}},
                {"Name": "docker-init", "Version": "0.19.0", "Details": {"GitCommit": "de40ad0"}},
            ],
            "Version": ENGINE_VERSION, "ApiVersion": self.api_version, "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "5d6db84", "GoVersion": "go1.19.8", "Os": "linux", "Arch": "amd64",
            "KernelVersion": s.kernel, "BuildTime": "2023-04-04T00:00:00.000000000+00:00",
        }

    def info(self) -> dict[str, Any]:
        s = self.spec
        states = [c.state for c in self.containers.values()]
        running = sum(1 for st in states if st in ("running", "restarting"))
        paused = states.count("paused")
        return {
            "ID": s.daemon_id, "Containers": len(states), "ContainersRunning": running,
            "ContainersPaused": paused, "ContainersStopped": len(states) - running - paused,
            "Images": len(self.images), "Driver": self.storage.driver, "DriverStatus": self.storage.driver_status(),
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "ipvlan", "macvlan", "null", "overlay"],
                        "Authorization": None,
                        "Log": ["awslogs", "fluentd", "gcplogs", "gelf", "journald", "json-file", "local",
                                "logentries", "splunk", "syslog"]},
            "MemoryLimit": True, "SwapLimit": True, "KernelMemory": s.cgroup == "1", "KernelMemoryTCP": s.cgroup == "1",
            "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True, "CPUSet": True, "PidsLimit": True,
            "IPv4Forwarding": True, "BridgeNfIptables": True, "BridgeNfIp6tables": True, "Debug": False,
            "NFd": 24 + 3 * running + 2 * len(self._event_subs) + sum(len(v) for v in self._stats_subs.values()),
            "OomKillDisable": s.cgroup == "1", "NGoroutines": 40 + 7 * running + len(self._event_subs),
            "SystemTime": rfc3339(time.time_ns()), "LoggingDriver": "json-file",
            "CgroupDriver": s.cgroup_driver, "CgroupVersion": s.cgroup,
            "NEventsListener": len(self._event_subs), "KernelVersion": s.kernel,
            "OperatingSystem": s.operating_system, "OSVersion": s.os_version, "OSType": "linux",
            "Architecture": "x86_64", "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": [],
                               "AllowNondistributableArtifactsHostnames": [],
                               "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                               "IndexConfigs": {"docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": True,
                                                              "Official": True}},
                               "Mirrors": []},
            "NCPU": s.ncpu, "MemTotal": s.mem_total, "GenericResources": None, "DockerRootDir": "/var/lib/docker",
            "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "Name": s.name,
            "Labels": [f"{k}={v}" for k, v in s.labels], "ExperimentalBuild": False, "ServerVersion": ENGINE_VERSION,
            "Runtimes": {"io.containerd.runc.v2": {"path": "runc"}, "io.containerd.runtime.v1.linux": {"path": "runc"},
                         "runc": {"path": "runc"}},
            "DefaultRuntime": "runc",
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                      "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": False, "Isolation": "", "InitBinary": "docker-init",
            "ContainerdCommit": {"ID": "2806fc1057397dbaeefbea0e4e17bddfbd388f38",
                                 "Expected": "2806fc1057397dbaeefbea0e4e17bddfbd388f38"},
            "RuncCommit": {"ID": "v1.1.5-0-gf19387a", "Expected": "v1.1.5-0-gf19387a"},
            "InitCommit": {"ID": "de40ad0", "Expected": "de40ad0"},
            "SecurityOptions": ["name=seccomp,profile=default"] + (["name=cgroupns"] if s.cgroup == "2" else []),
            "Warnings": None,
        }

    # -- containers: read --------------------------------------------------------

    def list_containers(self, all_: bool, filters: Mapping[str, list[str]], limit: int = -1) -> list[dict[str, Any]]:
        _check_filters(filters, _LIST_FILTERS)
        for status in filters.get("status", []):
            if status not in _STATUSES:
                raise ApiError(400, f"Invalid filter 'status={status}'")
        show_all = all_ or "status" in filters or limit > 0
        now = time.time()
        out = []
        for c in sorted(self.containers.values(), key=lambda c: c.created_ns, reverse=True):
            if not show_all and not c.running:
                continue
            if not self._list_match(c, filters):
                continue
            out.append(self._list_item(c, now))
            if 0 < limit <= len(out):
                break
        return out

    def _list_match(self, c: Container, f: Mapping[str, list[str]]) -> bool:
        if "id" in f and not _regex_match(f["id"], c.id):
            return False
        if "name" in f and not _regex_match(f["name"], "/" + c.name):
            return False
        if "label" in f and not _match_labels(f["label"], c.labels):
            return False
        if "status" in f and c.state not in f["status"]:
            return False
        if "exited" in f and not (c.state == "exited" and str(c.exit_code) in f["exited"]):
            return False
        if "health" in f:
            health = c.health_status if c.healthcheck else "none"
            if health not in f["health"]:
                return False
        if "ancestor" in f and not any(a in (c.image_ref, c.image.ref, c.image.id) for a in f["ancestor"]):
            return False
        if "network" in f:
            nets = set(c.networks) | {n.id for n in map(self._net_by_name, c.networks) if n is not None}
            if not nets & set(f["network"]):
                return False
        return True

    def _endpoint_settings(self, net: Network, aliases: list[str] | None,
                           ipam: dict[str, Any] | None) -> dict[str, Any]:
        return {"IPAMConfig": ipam, "Links": None, "Aliases": aliases, "NetworkID": net.id, "EndpointID": "",
                "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": None}

    def _list_item(self, c: Container, now: float) -> dict[str, Any]:
        return {
            "Id": c.id, "Names": ["/" + c.name], "Image": c.image_ref, "ImageID": c.image.id,
            "Command": c.command_line(), "Created": c.created_ns // NS, "Ports": [],
            "Labels": dict(sorted(c.labels.items())), "State": c.state, "Status": c.status_text(now),
            "HostConfig": {"NetworkMode": c.host_config["NetworkMode"]},
            "NetworkSettings": {"Networks": {k: dict(v) for k, v in c.networks.items()}},
            "Mounts": self.storage.mounts(c),
        }

    def inspect(self, ref: str) -> dict[str, Any]:
        c = self.lookup(ref)
        path, args = c.path_args
        state: dict[str, Any] = {
            "Status": c.state, "Running": c.running, "Paused": c.state == "paused",
            "Restarting": c.state == "restarting", "OOMKilled": c.oom_killed, "Dead": c.state == "dead",
            "Pid": c.pid if c.state in ("running", "paused") else 0, "ExitCode": c.exit_code, "Error": c.error,
            "StartedAt": rfc3339(c.started_ns), "FinishedAt": rfc3339(c.finished_ns),
        }
        if c.healthcheck:
            state["Health"] = {"Status": c.health_status, "FailingStreak": c.failing_streak,
                               "Log": list(c.health_log)}
        bridge = c.networks.get("bridge")
        data = "/var/lib/docker"
        config: dict[str, Any] = {
            "Hostname": c.id[:12], "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
            "AttachStderr": False, "Tty": c.tty, "OpenStdin": False, "StdinOnce": False, "Env": list(c.env),
            "Cmd": list(c.cmd) if c.cmd else None,
        }
        if c.healthcheck:
            config["Healthcheck"] = dict(c.healthcheck)
        config.update({"Image": c.image_ref, "Volumes": self.storage.config_volumes(c),
                       "WorkingDir": c.extra_config.get("WorkingDir", ""),
                       "Entrypoint": list(c.entrypoint) if c.entrypoint else None, "OnBuild": None,
                       "Labels": dict(sorted(c.labels.items()))})
        return {
            "Id": c.id, "Created": rfc3339(c.created_ns), "Path": path, "Args": args, "State": state,
            "Image": c.image.id, "ResolvConfPath": f"{data}/containers/{c.id}/resolv.conf",
            "HostnamePath": f"{data}/containers/{c.id}/hostname", "HostsPath": f"{data}/containers/{c.id}/hosts",
            "LogPath": f"{data}/containers/{c.id}/{c.id}-json.log" if c.started_ns else "",
            "Name": "/" + c.name, "RestartCount": c.restart_count, "Driver": self.storage.driver, "Platform": "linux",
            "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": None,
            "HostConfig": dict(c.host_config),
            "GraphDriver": self.storage.graph_driver(c),
            "Mounts": self.storage.mounts(c), "Config": config,
            "NetworkSettings": {
                "Bridge": "", "SandboxID": stable_id("sandbox", c.id, c.started_ns) if c.running else "",
                "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": {},
                "SandboxKey": f"/var/run/docker/netns/{stable_id('sandbox', c.id, c.started_ns)[:12]}"
                if c.running else "",
                "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
                "EndpointID": bridge["EndpointID"] if bridge else "", "Gateway": bridge["Gateway"] if bridge else "",
                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                "IPAddress": bridge["IPAddress"] if bridge else "",
                "IPPrefixLen": bridge["IPPrefixLen"] if bridge else 0, "IPv6Gateway": "",
                "MacAddress": bridge["MacAddress"] if bridge else "",
                "Networks": {k: dict(v) for k, v in c.networks.items()},
            },
        }

    def top(self, ref: str, ps_args: str = "") -> dict[str, Any]:
        c = self.lookup(ref)
        if c.state == "restarting":
            raise ApiError(409, f"Container {c.id} is restarting, wait until the container is running")
        if c.state not in ("running", "paused"):
            raise ApiError(409, f"Container {c.id} is not running")
        path, args = c.path_args
        cmd = " ".join([path, *args])
        stime = time.strftime("%H:%M", time.gmtime(c.started_ns / NS))
        cpu_s = int(c.cpu_ns / 1e9)
        procs = [(c.pid, c.pid - 20, cmd)] + [(c.pid + 17 * k, c.pid, f"{path} worker {k}")
                                              for k in range(1, c.nprocs)]
        if "aux" in ps_args or "u" in ps_args.replace("-", ""):
            rss_kb = int(c.load.mem / 1024 / max(1, len(procs)))
            stat = "Ts" if c.state == "paused" else "Ss"
            rows = [["root", str(pid), f"{c.usage * 100 / len(procs):.1f}",
                     f"{c.load.mem / self.spec.mem_total * 100 / len(procs):.1f}",
                     str(rss_kb + 4_000), str(rss_kb), "?", stat if k == 0 else stat[0] + "l", stime,
                     f"{cpu_s // len(procs) // 60}:{cpu_s // len(procs) % 60:02d}", pcmd]
                    for k, (pid, _, pcmd) in enumerate(procs)]
            return {"Processes": rows,
                    "Titles": ["USER", "PID", "%CPU", "%MEM", "VSZ", "RSS", "TTY", "STAT", "START", "TIME", "COMMAND"]}
        rows = [["root", str(pid), str(ppid), "0", stime, "?",
                 time.strftime("%H:%M:%S", time.gmtime(cpu_s // len(procs))), pcmd] for pid, ppid, pcmd in procs]
        return {"Processes": rows, "Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]}

    # -- containers: create / remove / rename / update ---------------------------

    def create(self, name: str | None, body: Mapping[str, Any]) -> dict[str, Any]:
        if name is not None and name != "":
            if not _NAME.match(name):
                raise ApiError(400, f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
            name = name.lstrip("/")
            self._check_name_free(name)
        else:
            name = self._random_name()
        image_ref = body.get("Image")
        if not isinstance(image_ref, str) or not image_ref:
            raise ApiError(400, "No command specified" if image_ref is None else "invalid reference format")
        full = image_ref if ":" in image_ref.rsplit("/", 1)[-1] or "@" in image_ref else f"{image_ref}:latest"
        image = self.images.get(full) or next((i for i in self.images.values() if i.id == image_ref
                                               or i.id[7:].startswith(image_ref)), None)
        if image is None:
            raise ApiError(404, f"No such image: {full}")
        user_hc = body.get("HostConfig") or {}
        if not isinstance(user_hc, dict):
            raise ApiError(400, "json: cannot unmarshal HostConfig")
        self._validate_resources(user_hc, {})
        policy = (user_hc.get("RestartPolicy") or {}).get("Name", "")
        if policy not in ("", "no", "always", "unless-stopped", "on-failure"):
            raise ApiError(400, f"invalid restart policy '{policy}'")
        if user_hc.get("AutoRemove") and policy not in ("", "no"):
            raise ApiError(400, "can't create 'AutoRemove' container with restart policy")
        hc = self._host_config(user_hc)
        cmd = body.get("Cmd")
        entrypoint = body.get("Entrypoint")
        if isinstance(cmd, str):
            cmd = [cmd]
        if isinstance(entrypoint, str):
            entrypoint = [entrypoint]
        if not cmd and not entrypoint:
            cmd = list(image.cmd)
        if not cmd and not entrypoint:
            raise ApiError(400, "No command specified")
        cid = model.hex_id(self._rng)
        app, cpu, mem, cache, log_period = model.default_spec_for(image.ref, cid, self.spec.seed)
        labels = {str(k): str(v) for k, v in (body.get("Labels") or {}).items()}
        env = list(image.env) + [str(e) for e in (body.get("Env") or [])]
        hcheck = body.get("Healthcheck")
        if isinstance(hcheck, dict) and hcheck.get("Test") and hcheck["Test"][0] != "NONE":
            hcheck = {"Interval": 30 * NS, "Retries": 3, **hcheck}
        else:
            hcheck = None
        c = Container(cid, name, image, image_ref, list(cmd or []), list(entrypoint) if entrypoint else None, env,
                      labels, hc, time.time_ns(), Load(f"{self.spec.seed}:api:{cid}", cpu, 0.05, mem, cache),
                      tty=bool(body.get("Tty")), healthcheck=hcheck, log_period=log_period,
                      log_lines=app.logs if app else (),
                      extra_config={"WorkingDir": body.get("WorkingDir") or ""})
        mode = hc["NetworkMode"]
        netname = "bridge" if mode == "default" else mode
        if netname.startswith("container:"):
            raise ApiError(400, "container: network mode is not simulated")
        net = self._network(netname)
        endpoints = ((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
        given = endpoints.get(net.name) or endpoints.get(net.id) or {}
        c.networks[net.name] = self._endpoint_settings(net, given.get("Aliases"), given.get("IPAMConfig"))
        self.storage.on_create(c, body)
        self.containers[cid] = c
        self._emit_container(c, "create")
        return {"Id": cid, "Warnings": []}

    def _random_name(self) -> str:
        while True:
            name = f"{self._rng.choice(_ADJECTIVES)}_{self._rng.choice(_SURNAMES)}"
            if all(c.name != name for c in self.containers.values()):
                return name

    def _check_name_free(self, name: str) -> None:
        for other in self.containers.values():
            if other.name == name:
                raise ApiError(409, f'Conflict. The container name "/{name}" is already in use by container '
                                    f'"{other.id}". You have to remove (or rename) that container to be able to '
                                    f"reuse that name.")

    async def remove(self, ref: str, force: bool) -> None:
        c = self.lookup(ref)
        async with c.lock:
            if c.state == "paused" and not force:
                raise ApiError(409, f"You cannot remove a paused container {c.id}. Unpause and then stop the "
                                    f"container before attempting removal or force remove")
            if c.state == "restarting" and not force:
                raise ApiError(409, f"You cannot remove a restarting container {c.id}. Stop the container before "
                                    f"attempting removal or force remove")
            if c.state == "running" and not force:
                raise ApiError(409, f"You cannot remove a running container {c.id}. Stop the container before "
                                    f"attempting removal or force remove")
            if c.state in ("running", "paused"):
                c.manually_stopped = True
                self._emit_container(c, "kill", signal="9")
                self._exit(c, 137)
            self._cancel_timers(c)
            c.state = "removing"
            self.containers.pop(c.id, None)
            self.storage.on_remove(c)
            for net in self.networks.values():
                net.endpoints.pop(c.id, None)
            self._emit_container(c, "destroy")
            c.removed.set()
            c.exited.set()
            for fut in c.exit_waiters:
                if not fut.done():
                    fut.set_result(c.exit_code)
            for sub in self._stats_subs.pop(c.id, set()):
                sub.end()

    def rename(self, ref: str, new: str) -> None:
        c = self.lookup(ref)
        if not new:
            raise ApiError(400, "Neither old nor new names may be empty")
        if not _NAME.match(new):
            raise ApiError(400, f"Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        new = new.lstrip("/")
        if new == c.name:
            raise ApiError(400, "Renaming a container with the same name as its current name")
        for other in self.containers.values():
            if other.name == new:
                raise ApiError(409, f'Error when allocating new name: Conflict. The container name "/{new}" is '
                                    f'already in use by container "{other.id}". You have to remove (or rename) '
                                    f"that container to be able to reuse that name.")
        old = c.name
        c.name = new
        self._emit_container(c, "rename", oldName="/" + old)

    @staticmethod
    def _validate_resources(new: Mapping[str, Any], current: Mapping[str, Any]) -> None:
        nano = new.get("NanoCpus") or 0
        if nano and (new.get("CpuPeriod") or 0):
            raise ApiError(400, "Conflicting options: Nano CPUs and CPU Period cannot both be set")
        if nano and (new.get("CpuQuota") or 0):
            raise ApiError(400, "Conflicting options: Nano CPUs and CPU Quota cannot both be set")
        if nano and (current.get("CpuQuota") or 0) > 0:
            raise ApiError(400, "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set")
        if (new.get("CpuQuota") or 0) > 0 and current.get("NanoCpus"):
            raise ApiError(400, "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set")
        if nano < 0:
            raise ApiError(400, "Range of CPUs is from 0.01 to the number of CPUs available on the system")
        memory = new.get("Memory") or 0
        if memory and memory < 6 * 1024 * 1024:
            raise ApiError(400, "Minimum memory limit allowed is 6MB")
        swap = new.get("MemorySwap") or 0
        if memory and swap > 0 and swap < memory:
            raise ApiError(400, "Minimum memoryswap limit should be larger than memory limit, see usage")

    def update(self, ref: str, body: Mapping[str, Any]) -> dict[str, Any]:
        c = self.lookup(ref)
        self._validate_resources(body, c.host_config)
        memory = body.get("Memory") or 0
        current_swap = c.host_config.get("MemorySwap") or 0
        if memory and not body.get("MemorySwap") and current_swap > 0 and memory > current_swap:
            raise ApiError(400, "Memory limit should be smaller than already set memoryswap limit, "
                                "update the memoryswap at the same time")
        for key in ("CpuShares", "Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuPeriod", "CpuQuota",
                    "CpusetCpus", "CpusetMems", "BlkioWeight", "PidsLimit", "KernelMemory", "CpuRealtimePeriod",
                    "CpuRealtimeRuntime"):
            if key in body and body[key] is not None and (body[key] or key in ("PidsLimit",)):
                c.host_config[key] = body[key]
        policy = body.get("RestartPolicy")
        if isinstance(policy, dict) and policy.get("Name") is not None and "Name" in policy:
            if policy["Name"] and policy["Name"] not in ("no", "always", "unless-stopped", "on-failure"):
                raise ApiError(400, f"invalid restart policy '{policy['Name']}'")
            c.host_config["RestartPolicy"] = {"Name": policy.get("Name", ""),
                                              "MaximumRetryCount": policy.get("MaximumRetryCount", 0)}
        self._emit_container(c, "update")
        return {"Warnings": None}

    # -- containers: run state ---------------------------------------------------

    def _attach(self, c: Container) -> None:
        """Give the container its endpoints (on start): IPs, MACs, endpoint ids."""
        for name, settings in list(c.networks.items()):
            try:
                net = self._network(name)
            except ApiError:
                continue
            if net.driver in ("host", "null"):
                settings.update(NetworkID=net.id, EndpointID=stable_id("ep", c.id, net.id, c.started_ns))
                net.endpoints[c.id] = Endpoint(settings["EndpointID"], "", "", None, None)
                continue
            wanted = (settings.get("IPAMConfig") or {}).get("IPv4Address")
            ip = net.allocate(wanted)
            mac = "02:42:" + ":".join(f"{int(x):02x}" for x in ip.split("."))
            aliases = settings.get("Aliases")
            if not net.builtin:
                aliases = list(aliases or [])
                if c.id[:12] not in aliases:
                    aliases.append(c.id[:12])
            settings.update(NetworkID=net.id, EndpointID=stable_id("ep", c.id, net.id, c.started_ns),
                            Gateway=net.gateway, IPAddress=ip, IPPrefixLen=net.prefix_len, MacAddress=mac,
                            Aliases=aliases)
            net.endpoints[c.id] = Endpoint(settings["EndpointID"], mac, ip, aliases, settings.get("IPAMConfig"))

    def _detach(self, c: Container) -> None:
        for name, settings in c.networks.items():
            with contextlib.suppress(ApiError):
                net = self._network(name)
                if net.endpoints.pop(c.id, None) is not None:
                    self._emit_network(net, "disconnect", c.id)
            settings.update(EndpointID="", Gateway="", IPAddress="", IPPrefixLen=0, MacAddress="")
            if settings.get("Aliases") and c.id[:12] in settings["Aliases"]:
                settings["Aliases"] = [a for a in settings["Aliases"] if a != c.id[:12]] or None

    def _run(self, c: Container) -> None:
        """The container's process starts: network connect events, then start."""
        for name in list(c.networks):
            with contextlib.suppress(ApiError):
                self._emit_network(self._network(name), "connect", c.id)
        now = time.time()
        c.state = "running"
        c.started_ns = time.time_ns()
        c.finished_ns = c.finished_ns  # kept, as dockerd does
        c.exit_code = 0
        c.error = ""
        c.pid = c.pid_base + self._rng.randrange(1, 3000)
        c.run_started = now
        c.load.reset()
        c.usage = 0.0
        c.exited = asyncio.Event()
        if c.healthcheck:
            c.health_status = "starting"
            c.failing_streak = 0
            c.last_check = now
        c.runs.append((c.started_ns, 0))
        self._attach(c)
        self._emit_container(c, "start")
        exit_after = _scripted_exit(c)
        if exit_after is not None:
            delay, code = exit_after
            loop = asyncio.get_running_loop()
            c.exit_handle = loop.call_later(delay, self._scripted_exit, c, code)

    def _scripted_exit(self, c: Container, code: int) -> None:
        c.exit_handle = None
        if c.state == "running":
            self._exit(c, code)

    def _exit(self, c: Container, code: int, oom: bool = False) -> None:
        """The process ended: die (+ network disconnects), then the restart policy decides."""
        ran = time.time() - c.run_started
        self._cancel_timers(c)
        c.state = "exited"
        c.exit_code = code
        c.oom_killed = oom
        c.pid = 0
        c.usage = 0.0
        c.finished_ns = time.time_ns()
        if c.runs:
            c.runs[-1] = (c.runs[-1][0], c.finished_ns)
        self._emit_container(c, "die", exitCode=str(code))
        self._detach(c)
        c.exited.set()
        waiters, c.exit_waiters = c.exit_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(code)
        policy = c.host_config["RestartPolicy"]
        name, retries = policy.get("Name") or "no", policy.get("MaximumRetryCount") or 0
        restart = not c.manually_stopped and (
            name in ("always", "unless-stopped")
            or (name == "on-failure" and code != 0 and (not retries or c.restart_count < retries)))
        if not restart:
            return
        # restartmanager: 100 ms doubling to 1 min; reset after a run of 10 s or more
        c.backoff = 0.1 if ran >= 10 or not c.backoff else min(c.backoff * 2, 60.0)
        c.state = "restarting"
        loop = asyncio.get_running_loop()
        c.restart_handle = loop.call_later(c.backoff, self._auto_restart, c)

    def _auto_restart(self, c: Container) -> None:
        c.restart_handle = None
        if c.state != "restarting" or c.id not in self.containers:
            return
        c.restart_count += 1
        self._run(c)

    def _cancel_timers(self, c: Container) -> None:
        for attr in ("restart_handle", "exit_handle"):
            handle = getattr(c, attr)
            if handle:
                handle.cancel()
                setattr(c, attr, None)

    async def start_container(self, ref: str) -> None:
        c = self.lookup(ref)
        async with c.lock:
            if c.state == "paused":
                raise ApiError(409, "cannot start a paused container, try unpause instead")
            if c.state in ("running", "restarting"):
                raise NotModified()
            if c.state in ("removing", "dead"):
                raise ApiError(409, "container is marked for removal and cannot be started")
            for name in c.networks:
                try:
                    self._network(name)
                except ApiError:
                    raise ApiError(404, f"network {name} not found") from None
            c.manually_stopped = False
            c.backoff = 0.0
            self._run(c)

    async def _stop_running(self, c: Container, timeout: float | None) -> None:
        """SIGTERM, wait (graceful ones exit at once), SIGKILL; then the stop event."""
        c.manually_stopped = True
        if c.state == "restarting":
            self._cancel_timers(c)
            c.state = "exited"
            c.exited.set()
            self._emit_container(c, "stop")
            return
        self._emit_container(c, "kill", signal="15")
        if c.state == "paused":
            c.state = "running"
            self._emit_container(c, "unpause")
        wait = 10.0 if timeout is None else timeout
        if c.graceful:
            wait = min(wait, _term_delay(c)) if wait >= 0 else _term_delay(c)
        exited = c.exited
        if wait < 0:
            await exited.wait()
        else:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(exited.wait()), wait)
        if c.state == "running":
            if c.graceful:
                self._exit(c, 0 if int(c.id[2:4], 16) % 2 else 143)
            else:
                self._emit_container(c, "kill", signal="9")
                self._exit(c, 137)
        self._emit_container(c, "stop")

    async def stop_container(self, ref: str, timeout: float | None) -> None:
        c = self.lookup(ref)
        async with c.lock:
            if c.state not in ("running", "paused", "restarting"):
                raise NotModified()
            await self._stop_running(c, timeout)

    async def restart_container(self, ref: str, timeout: float | None) -> None:
        c = self.lookup(ref)
        async with c.lock:
            if c.state in ("running", "paused", "restarting"):
                await self._stop_running(c, timeout)
            c.manually_stopped = False
            c.backoff = 0.0
            self._run(c)
            self._emit_container(c, "restart")

    async def kill_container(self, ref: str, signal: str) -> None:
        try:
            c = self.lookup(ref)
        except ApiError as exc:
            raise ApiError(exc.status, f"Cannot kill container: {ref}: {exc.message}") from None
        number = _parse_signal(signal or "KILL")
        async with c.lock:
            if c.state not in ("running", "paused", "restarting"):
                raise ApiError(409, f"Cannot kill container: {ref}: Container {c.id} is not running")
            c.manually_stopped = True
            if c.state == "restarting":
                self._cancel_timers(c)
                c.state = "exited"
                c.exited.set()
                return
            self._emit_container(c, "kill", signal=str(number))
            if number == 9:
                self._exit(c, 137)
            elif number in (2, 3, 15) and c.graceful:  # it handles the signal and exits shortly
                if c.exit_handle:
                    c.exit_handle.cancel()
                c.exit_handle = asyncio.get_running_loop().call_later(
                    _term_delay(c), self._scripted_exit, c, 128 + number)

    async def pause_container(self, ref: str) -> None:
        c = self.lookup(ref)
        async with c.lock:
            if c.state == "paused":
                raise ApiError(409, f"Container {c.id} is already paused")
            if c.state == "restarting":
                raise ApiError(409, f"Container {c.id} is restarting, wait until the container is running")
            if c.state != "running":
                raise ApiError(409, f"Container {c.id} is not running")
            c.cpu_ns = float(c.cpu_total(time.time(), self.last_tick))
            c.usage = 0.0
            c.state = "paused"
            self._emit_container(c, "pause")

    async def unpause_container(self, ref: str) -> None:
        c = self.lookup(ref)
        async with c.lock:
            if c.state != "paused":
                raise ApiError(500, f"Container {c.id} is not paused")
            c.state = "running"
            self._emit_container(c, "unpause")

    async def wait_container(self, ref: str, condition: str) -> dict[str, Any]:
        """POST /wait: not-running (default) returns at once for a stopped container; next-exit waits
        for the next exit; removed waits for removal."""
        c = self.lookup(ref)
        if condition == "removed":
            await c.removed.wait()
        elif condition == "next-exit" or c.running:
            fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            c.exit_waiters.append(fut)
            removed = asyncio.ensure_future(c.removed.wait())
            try:
                either: set[asyncio.Future[Any]] = {fut, removed}
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            finally:
                removed.cancel()
        return {"Error": None, "StatusCode": c.exit_code}

    # -- logs ------------------------------------------------------------------

    def log_records(self, c: Container, since_ns: int, until_ns: int, tail: int | None,
                    now_ns: int) -> list[tuple[int, int, str]]:
        """(timestamp ns, stream 1|2, line) of the container's output, oldest first."""
        if not c.log_period or not c.log_lines:
            return []
        period = int(c.log_period * NS)
        out: list[tuple[int, int, str]] = []
        budget = tail if tail is not None else None
        for start, end in reversed(c.runs):
            stop = min(end or now_ns, until_ns or now_ns, now_ns)
            first = max(start, since_ns)
            if stop <= first:
                continue
            k_hi = (stop - start) // period
            k_lo = max(0, -(-(first - start) // period))
            if budget is not None:
                k_lo = max(k_lo, k_hi - budget + 1)
            seg = [self._log_record(c, start, k, period) for k in range(k_lo, k_hi + 1) if k > 0]
            if end and c.role == model.CRASHLOOP and first <= end - 1_000_000 <= stop:
                seg.append((end - 1_000_000, 2, "panic: dial tcp 10.0.3.7:5432: connect: connection refused"))
            out[:0] = seg
            if budget is not None:
                budget -= len(seg)
                if budget <= 0:
                    break
        return out if tail is None else out[-tail:] if tail > 0 else []

    @staticmethod
    def _log_record(c: Container, start: int, k: int, period: int) -> tuple[int, int, str]:
        ts = start + k * period
        h = int(stable_id(c.id, start, k)[:12], 16)
        template = c.log_lines[h % len(c.log_lines)]
        text = template.format(n=h % 99991, n3=h % 250 + 1, n4=(h >> 8) % 250 + 1, ms=(h >> 16) % 900 + 3,
                               ts=time.strftime("%d %b %Y %H:%M:%S", time.gmtime(ts / NS)))
        stream = 2 if "warn" in text.lower() or "retrying" in text else 1
        return ts, stream, text

    async def follow_logs(self, c: Container, after_ns: int, until_ns: int) -> AsyncIterator[tuple[int, int, str]]:
        """New log records as they happen, until the container stops (or `until`)."""
        while c.state in ("running", "paused") and c.id in self.containers:
            now = time.time_ns()
            if until_ns and now > until_ns:
                return
            for rec in self.log_records(c, after_ns + 1, until_ns, None, now):
                after_ns = rec[0]
                yield rec
            delay = c.log_period if c.log_period else 1.0
            exited = c.exited
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(exited.wait()), min(delay, 1.0))

    # -- stats -----------------------------------------------------------------

    def subscribe_stats(self, c: Container, sub: StatsSink) -> None:
        """`sub` gets every tick's sample of `c` until unsubscribed, or `end()` when `c` is removed."""
        self._stats_subs.setdefault(c.id, set()).add(sub)

    def unsubscribe_stats(self, c: Container, sub: StatsSink) -> None:
        subs = self._stats_subs.get(c.id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._stats_subs[c.id]

    def system_cpu(self, now: float) -> int:
        return samples.system_cpu(self.spec, self.started, now)

    def empty_stats(self, c: Container) -> dict[str, Any]:
        return samples.empty(c)

    def stats_sample(self, c: Container, now: float) -> dict[str, Any]:
        """One stats document as a one-shot reader sees it (empty precpu_stats)."""
        if c.state not in ("running", "paused"):
            return samples.empty(c)
        return samples.sample(self.spec, c, now, self.last_tick, rfc3339(int(now * NS)), self.system_cpu(now),
                              self._has_interface(c))

    def _has_interface(self, c: Container) -> bool:
        """The container has a network interface (per-interface stats): attached to a network other than host/none."""
        nets = (self._net_by_name(n) for n in c.networks)
        return any(n is not None and n.driver not in ("host", "null") for n in nets)

    def render_stats(self, c: Container, now: float, read: bytes | None = None,
                     system: int | None = None) -> samples.Sample:
        """`stats_sample()` pre-encoded for streaming (what the tick hands to every reader of `c`);
        `read` and `system` are the tick's, computed once for all containers."""
        if c.state not in ("running", "paused"):
            return samples.Sample.from_doc(samples.empty(c))
        return samples.render(self.spec, c, now, self.last_tick,
                              rfc3339(int(now * NS)).encode() if read is None else read,
                              self.system_cpu(now) if system is None else system, self._has_interface(c))

    # -- networks --------------------------------------------------------------

    def _network_doc(self, net: Network, with_containers: bool) -> dict[str, Any]:
        containers: dict[str, Any] = {}
        if with_containers:
            for cid, ep in net.endpoints.items():
                c = self.containers.get(cid)
                if c is None:
                    continue
                containers[cid] = {"Name": c.name, "EndpointID": ep.endpoint_id, "MacAddress": ep.mac,
                                   "IPv4Address": f"{ep.ip}/{net.prefix_len}" if ep.ip else "", "IPv6Address": ""}
        config = [{"Subnet": net.subnet, "Gateway": net.gateway}] if net.subnet else []
        return {"Name": net.name, "Id": net.id, "Created": rfc3339(net.created_ns), "Scope": "local",
                "Driver": net.driver, "EnableIPv6": net.enable_ipv6,
                "IPAM": {"Driver": "default", "Options": net.ipam_options, "Config": config},
                "Internal": net.internal, "Attachable": net.attachable, "Ingress": False,
                "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": containers,
                "Options": dict(net.options), "Labels": dict(sorted(net.labels.items()))}

    def list_networks(self, filters: Mapping[str, list[str]]) -> list[dict[str, Any]]:
        _check_filters(filters, _NETWORK_FILTERS)
        for t in filters.get("type", []):
            if t not in ("custom", "builtin"):
                raise ApiError(400, f"invalid filter: 'type'='{t}'")
        out = []
        for net in self.networks.values():
            if "name" in filters and not _regex_match(filters["name"], net.name):
                continue
            if "id" in filters and not _regex_match(filters["id"], net.id):
                continue
            if "label" in filters and not _match_labels(filters["label"], net.labels):
                continue
            if "driver" in filters and net.driver not in filters["driver"]:
                continue
            if "type" in filters and ("builtin" if net.builtin else "custom") not in filters["type"]:
                continue
            if "scope" in filters and "local" not in filters["scope"]:
                continue
            out.append(self._network_doc(net, with_containers=False))
        return out

    def inspect_network(self, ref: str) -> dict[str, Any]:
        return self._network_doc(self._network(ref), with_containers=True)

    def create_network(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body.get("Name")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "invalid name: name is empty")
        driver = body.get("Driver") or "bridge"
        if driver in ("host", "null"):
            raise ApiError(403, f"only one instance of \"{driver}\" network is allowed")
        if driver not in ("bridge", "macvlan", "ipvlan", "overlay"):
            raise ApiError(404, f'plugin "{driver}" not found')
        warning = ""
        same = [n for n in self.networks.values() if n.name == name]
        if same:
            if body.get("CheckDuplicate"):
                raise ApiError(409, f"network with name {name} already exists")
            warning = f"Network with name {name} (id : {same[0].id}) already exists"
        ipam = body.get("IPAM") or {}
        configs = ipam.get("Config") or []
        if configs and isinstance(configs[0], dict) and configs[0].get("Subnet"):
            subnet = configs[0]["Subnet"]
            gateway = configs[0].get("Gateway") or subnet.split("/")[0].rsplit(".", 1)[0] + ".1"
        else:
            subnet, gateway = f"172.{self._next_subnet}.0.0/16", f"172.{self._next_subnet}.0.1"
            self._next_subnet += 1
        net = Network(id=model.hex_id(self._rng), name=name, driver=driver, created_ns=time.time_ns(),
                      subnet=subnet, gateway=gateway, internal=bool(body.get("Internal")),
                      attachable=bool(body.get("Attachable")),
                      labels={str(k): str(v) for k, v in (body.get("Labels") or {}).items()},
                      options={str(k): str(v) for k, v in (body.get("Options") or {}).items()},
                      ipam_options=ipam.get("Options"), enable_ipv6=bool(body.get("EnableIPv6")))
        self.networks[net.id] = net
        self._emit_network(net, "create")
        return {"Id": net.id, "Warning": warning}

    def remove_network(self, ref: str) -> None:
        net = self._network(ref)
        if net.builtin:
            raise ApiError(403, f"{net.name} is a pre-defined network and cannot be removed")
        if net.endpoints:
            raise ApiError(403, f"error while removing network: network {net.name} id {net.id} has active endpoints")
        del self.networks[net.id]
        self._emit_network(net, "destroy")

    def connect(self, ref: str, body: Mapping[str, Any]) -> None:
        net = self._network(ref)
        c = self.lookup(str(body.get("Container") or ""))
        if c.host_config["NetworkMode"] == "host" or net.driver == "host":
            raise ApiError(400, "container cannot be disconnected from host network or connected to host network")
        if net.name in c.networks:
            raise ApiError(403, f"endpoint with name {c.name} already exists in network {net.name}")
        cfg = body.get("EndpointConfig") or {}
        ipam = cfg.get("IPAMConfig") or None
        if ipam and ipam.get("IPv4Address") and net.builtin:
            raise ApiError(400, "user specified IP address is supported on user defined networks only")
        aliases = cfg.get("Aliases") or None
        if aliases and net.builtin:
            raise ApiError(400, "network-scoped alias is supported only for containers in user defined networks")
        c.networks[net.name] = self._endpoint_settings(net, list(aliases) if aliases else None, ipam)
        if c.state in ("running", "paused"):
            self._attach_one(c, net)
            self._emit_network(net, "connect", c.id)

    def _attach_one(self, c: Container, net: Network) -> None:
        keep = {k: v for k, v in c.networks.items() if k != net.name}
        only = {net.name: c.networks[net.name]}
        c.networks = only
        self._attach(c)
        c.networks = {**keep, **only}

    def disconnect(self, ref: str, body: Mapping[str, Any]) -> None:
        net = self._network(ref)
        target = str(body.get("Container") or "")
        try:
            c = self.lookup(target)
        except ApiError:
            if body.get("Force"):
                for cid in [cid for cid in net.endpoints if cid.startswith(target)]:
                    net.endpoints.pop(cid)
                return
            raise
        if net.name not in c.networks:
            raise ApiError(500, f"container {c.id} is not connected to network {net.name}")
        if c.host_config["NetworkMode"] == "host":
            raise ApiError(400, "container cannot be disconnected from host network or connected to host network")
        del c.networks[net.name]
        if net.endpoints.pop(c.id, None) is not None:
            self._emit_network(net, "disconnect", c.id)


def _offer(queue: asyncio.Queue[Any], item: Any) -> None:
    """Non-blocking put: a slow reader loses the oldest item rather than stalling the node."""
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(item)


def _term_delay(c: Container) -> float:
    """How long a container that handles SIGTERM takes to exit: 50-300 ms, fixed per container."""
    return 0.05 + int(c.id[:2], 16) / 255 * 0.25


def _parse_signal(text: str) -> int:
    t = text.upper().removeprefix("SIG")
    if t.isdigit() and 0 < int(t) < 65:
        return int(t)
    if t in SIGNALS:
        return SIGNALS[t]
    raise ApiError(400, f"Invalid signal: {text}")


_SLEEP = re.compile(r"^\s*sleep\s+(\d+(?:\.\d+)?)\s*$")
_EXIT = re.compile(r"^\s*exit\s+(\d+)\s*$")


def _scripted_exit(c: Container) -> tuple[float, int] | None:
    """The few commands the sim can "run" honestly: true, false, sleep N, sh -c 'exit N', a bare shell
    without stdin. Anything else runs until stopped, killed or its load model ends it."""
    argv = list(c.entrypoint or []) + list(c.cmd or [])
    if not argv or c.role != model.NORMAL or c.log_period:
        return None
    prog = argv[0].rsplit("/", 1)[-1]
    if prog == "true":
        return 0.01, 0
    if prog == "false":
        return 0.01, 1
    if prog == "sleep" and len(argv) == 2:
        m = _SLEEP.match(" ".join(argv))
        return (float(m.group(1)), 0) if m else None
    if prog in ("sh", "bash", "ash"):
        if len(argv) == 1 and not c.tty:
            return 0.01, 0
        if len(argv) == 3 and argv[1] == "-c":
            if (m := _EXIT.match(argv[2])) is not None:
                return 0.01, int(m.group(1)) % 256
            if (m := _SLEEP.match(argv[2])) is not None:
                return float(m.group(1)), 0
    return None


def iter_frames(records: Iterable[tuple[int, int, str]], timestamps: bool, tty: bool,
                streams: tuple[bool, bool]) -> Iterable[bytes]:
    """docker's log stream format: 8-byte header (stream, 0, 0, 0, big-endian length) per
    frame unless the container has a TTY."""
    for ts, stream, text in records:
        if (stream == 1 and not streams[0]) or (stream == 2 and not streams[1]):
            continue
        line = (f"{rfc3339(ts)} {text}\n" if timestamps else f"{text}\n").encode()
        if tty:
            yield line
        else:
            yield bytes((stream, 0, 0, 0)) + len(line).to_bytes(4, "big") + line
