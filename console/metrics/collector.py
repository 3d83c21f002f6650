"""The `berth_*` series, rendered from the current snapshot at scrape time.

``families(snapshot, ...)`` turns the one snapshot the poller last published into metric
families; nothing is copied into client-library gauges between scrapes, so there is no second
copy of the fleet's state to drift from the first, and nothing is spent while nobody scrapes.
Two renderers read the families: ``SnapshotCollector``, a prometheus-client custom collector
(any registry, any format the library speaks), and ``render_text``, which writes the text
format 0.0.4 straight from them: at 10,000 containers the library's generic per-sample path
costs about a second per scrape, the direct one a small fraction (bench/metrics_scale.py). The
test suite checks that both say the same.

Rules the series follow (https://prometheus.io/docs/practices/naming/):

* base units: cores, bytes, seconds, ratios (1.0 = 100 %);
* a figure Berth does not know is absent, never 0: a node that is down, connecting or whose
  data is older than ``[alerts] stale_after`` keeps only ``berth_node_up``, ``berth_node_state``,
  ``berth_node_info``, ``berth_node_data_age_seconds`` and the poller's counters; a container
  on such a node keeps only ``berth_container_info``; CPU use is absent until two samples
  exist; a node's or tenant's total is absent while one of its running containers has none;
* inventory labels (rack, zone...) are on ``berth_node_info`` only, for ``group_left`` joins;
* no explicit timestamps: a shard that stops answering gets Prometheus' staleness markers at
  the next failed scrape, so its series turn absent instead of repeating their last value.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from console import __version__
from console.fleet.model import FleetSnapshot, NodeSnapshot, NodeState

__all__ = ["CONTAINER_STATES", "NODE_INFO_LABELS", "Family", "SnapshotCollector", "families", "label_name",
           "node_is_fresh", "render_text"]

SnapshotSource = Callable[[], "FleetSnapshot | None"]

# Docker's container states, all always present in berth_node_containers / berth_tenant_containers
# (0 where none), so a sum by state never loses a state that emptied.
CONTAINER_STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")
NODE_INFO_LABELS = ("node", "engine", "engine_version", "api_version", "kernel", "os", "cgroup_version")
CONTAINER_LABELS = ("node", "container", "tenant")
_LABEL_OK = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_LABEL_BAD_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def label_name(key: str, taken: Iterable[str] = NODE_INFO_LABELS) -> str:
    """An inventory label key as a Prometheus label name: invalid characters become `_`, and a key
    that would clash with one of Berth's own labels (or the reserved `__` prefix) gets `label_`."""
    name = key if _LABEL_OK.match(key) else _LABEL_BAD_CHARS.sub("_", key)
    if not name or name[0].isdigit():
        name = f"_{name}"
    if name in taken or name.startswith("__"):
        name = f"label_{name.lstrip('_')}"
    return name


def node_is_fresh(node: NodeSnapshot, age: float | None, stale_after: float) -> bool:
    """Its figures are current: reachable, and its newest data younger than `stale_after`."""
    return node.live and age is not None and age <= stale_after


def _esc(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


# (node, container, tenant, id, image, state) -> escaped label texts, from the previous scrape
_LABEL_CACHE: dict[tuple[str, ...], tuple[str, str]] = {}


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    return ",".join(f'{n}="{_esc(v)}"' for n, v in zip(names, values, strict=True))


@dataclass(slots=True)
class Family:
    """One metric family of one scrape. ``rows`` are (label values, label text, value); the label
    text is the escaped `name="value",...` the text format needs, built once per object."""

    name: str  # counters without `_total`, as prometheus-client wants them
    kind: str  # gauge | counter
    help: str
    labels: tuple[str, ...]
    rows: list[tuple[tuple[str, ...], str, float]] = field(default_factory=list)

    def add(self, values: tuple[str, ...], value: float, text: str | None = None) -> None:
        self.rows.append((values, _labels(self.labels, values) if text is None else text, value))

    @property
    def sample_name(self) -> str:
        return f"{self.name}_total" if self.kind == "counter" else self.name


def _fam(name: str, help: str, *labels: str, kind: str = "gauge") -> Family:
    return Family(name, kind, help, labels)


def families(snap: FleetSnapshot | None, *, now: float, stale_after: float, shard: str = "") -> list[Family]:
    """Every `berth_*` family for ``snap`` as of ``now`` (unix seconds)."""
    poller = _fam("berth_poller_info", "Berth's poller: version and shard", "version", "shard")
    poller.add((__version__, shard), 1.0)
    out = [poller]
    if snap is None:  # not started yet: nothing is known
        return out
    snap_age = max(0.0, now - snap.taken_at)
    age_f = _fam("berth_snapshot_age_seconds", "Seconds since the poller published the snapshot this scrape reads")
    age_f.add((), snap_age)
    out.append(age_f)

    # -- nodes
    up = _fam("berth_node_up", "1 when Berth reaches the node's Engine API (up or degraded), else 0", "node")
    state = _fam("berth_node_state", "1 for the node's current state in Berth's poller", "node", "state")
    extra: list[str] = []
    for n in snap.nodes:
        for key, _ in n.labels:
            name = label_name(key)
            if name not in extra:
                extra.append(name)
    info = _fam("berth_node_info", "Engine and inventory labels of a node, for group_left joins",
                *NODE_INFO_LABELS, *extra)
    data_age = _fam("berth_node_data_age_seconds", "Seconds since the newest data from the node", "node")
    data_at = _fam("berth_node_data_timestamp_seconds", "Unix time of the newest data from the node (what "
                   "readers use once its shard stopped reporting)", "node")
    cpus = _fam("berth_node_cpus", "CPUs the node's daemon reports (NCPU)", "node")
    mem = _fam("berth_node_memory_bytes", "Memory the node's daemon reports (MemTotal)", "node")
    cpu_c = _fam("berth_node_cpu_committed_ratio", "Sum of running containers' CPU limits / node CPUs", "node")
    mem_c = _fam("berth_node_memory_committed_ratio", "Sum of running containers' memory limits / node memory",
                 "node")
    cordoned = _fam("berth_node_cordoned", "1 when the node is cordoned by Berth", "node")
    samples = _fam("berth_poller_samples", "Stats samples Berth's poller applied", "node", kind="counter")
    errors = _fam("berth_poller_errors", "Errors Berth's poller met (failed connects, partial failures)", "node",
                  kind="counter")
    fresh: dict[str, NodeSnapshot] = {}
    for n in snap.nodes:
        nkey: tuple[str, ...] = (n.name,)
        text = _labels(("node",), nkey)
        up.add(nkey, 1.0 if n.live else 0.0, text)
        for ns in NodeState:
            state.add((n.name, ns.value), 1.0 if n.state is ns else 0.0)
        own = dict(zip(NODE_INFO_LABELS, (n.name, n.engine, n.engine_version, n.api_version, n.kernel, n.os,
                                          n.cgroup_version), strict=True))
        for k, v in n.labels:
            own[label_name(k)] = v
        info.add(tuple(own.get(name, "") for name in info.labels), 1.0)
        samples.add(nkey, float(n.samples), text)
        errors.add(nkey, float(n.errors), text)
        age = None if n.data_age is None else n.data_age + snap_age
        if age is not None:
            data_age.add(nkey, age, text)
            data_at.add(nkey, now - age, text)
        if not node_is_fresh(n, age, stale_after):
            continue
        fresh[n.name] = n
        if n.cpus:
            cpus.add(nkey, float(n.cpus), text)
            cpu_c.add(nkey, n.density.cpu_committed, text)
        if n.mem_total:
            mem.add(nkey, float(n.mem_total), text)
            mem_c.add(nkey, n.density.mem_committed, text)
        cordoned.add(nkey, 1.0 if n.cordoned else 0.0, text)
    out += [up, state, info, data_age, data_at, cpus, mem, cpu_c, mem_c, cordoned, samples, errors]

    # -- containers
    lab = CONTAINER_LABELS
    c_info = _fam("berth_container_info", "1 for each container Berth knows; on a node that is not fresh its "
                  "state is the last known", *lab, "id", "image", "state")
    c_cpu = _fam("berth_container_cpu_usage_cores", "CPU used (1 = one core)", *lab)
    c_cpu_l = _fam("berth_container_cpu_limit_cores", "CPU limit; absent when unlimited", *lab)
    c_mem = _fam("berth_container_memory_usage_bytes", "Memory used (docker CLI formula)", *lab)
    c_mem_l = _fam("berth_container_memory_limit_bytes", "Memory limit; absent when unlimited", *lab)
    c_restarts = _fam("berth_container_restarts", "Restarts by the daemon (RestartCount)", *lab, kind="counter")
    c_running = _fam("berth_container_running", "1 when the container runs", *lab)
    c_isolated = _fam("berth_container_isolated", "1 when Berth isolated the container's network", *lab)
    c_oom = _fam("berth_container_oom_killed", "1 when the daemon says its last exit was an OOM kill", *lab)
    c_started = _fam("berth_container_start_time_seconds", "Unix time the container last started", *lab)
    node_cpu: dict[str, float] = {}
    node_mem: dict[str, float] = {}
    ten_cpu: dict[str, float] = {}
    ten_mem: dict[str, float] = {}
    unknown: set[tuple[str, str]] = set()  # ("cpu"|"mem"|"tcpu"|"tmem", node or tenant): a sum with a hole
    node_counts: dict[tuple[str, str], int] = {}
    ten_counts: dict[tuple[str, str], int] = {}
    # The hot loop (10,000 containers, ~9 series each): rows appended directly, label text escaped once
    # per container and kept between scrapes (the same containers come back every scrape).
    global _LABEL_CACHE
    cache, _LABEL_CACHE = _LABEL_CACHE, {}
    info_rows, cpu_rows, cpu_l_rows = c_info.rows.append, c_cpu.rows.append, c_cpu_l.rows.append
    mem_rows, mem_l_rows, restart_rows = c_mem.rows.append, c_mem_l.rows.append, c_restarts.rows.append
    running_rows, isolated_rows = c_running.rows.append, c_isolated.rows.append
    oom_rows, started_rows = c_oom.rows.append, c_started.rows.append
    for c in snap.containers:
        ckey: tuple[str, ...] = (c.node, c.name, c.tenant)
        ikey = (c.node, c.name, c.tenant, c.id, c.image, c.state)
        texts = cache.get(ikey)
        if texts is None:
            text = f'node="{_esc(c.node)}",container="{_esc(c.name)}",tenant="{_esc(c.tenant)}"'
            texts = (text, f'{text},id="{_esc(c.id)}",image="{_esc(c.image)}",state="{_esc(c.state)}"')
        _LABEL_CACHE[ikey] = texts
        text = texts[0]
        info_rows((ikey, texts[1], 1.0))
        if c.node not in fresh:
            ten_counts[c.tenant, "unknown"] = ten_counts.get((c.tenant, "unknown"), 0) + 1
            continue
        node_counts[c.node, c.state] = node_counts.get((c.node, c.state), 0) + 1
        ten_counts[c.tenant, c.state] = ten_counts.get((c.tenant, c.state), 0) + 1
        run = c.state == "running"
        running_rows((ckey, text, 1.0 if run else 0.0))
        restart_rows((ckey, text, float(c.restart_count)))
        isolated_rows((ckey, text, 1.0 if c.isolated else 0.0))
        oom_rows((ckey, text, 1.0 if c.oom_killed else 0.0))
        if c.started_at is not None:
            started_rows((ckey, text, c.started_at))
        if c.cpu_limit:
            cpu_l_rows((ckey, text, c.cpu_limit))
        if c.mem_limit:
            mem_l_rows((ckey, text, float(c.mem_limit)))
        if not run:
            continue
        if c.cpu_percent is None:
            unknown.add(("cpu", c.node))
            unknown.add(("tcpu", c.tenant))
        else:
            cores = c.cpu_percent / 100.0
            cpu_rows((ckey, text, cores))
            node_cpu[c.node] = node_cpu.get(c.node, 0.0) + cores
            ten_cpu[c.tenant] = ten_cpu.get(c.tenant, 0.0) + cores
        if c.mem_used is None:
            unknown.add(("mem", c.node))
            unknown.add(("tmem", c.tenant))
        else:
            mem_rows((ckey, text, float(c.mem_used)))
            node_mem[c.node] = node_mem.get(c.node, 0.0) + c.mem_used
            ten_mem[c.tenant] = ten_mem.get(c.tenant, 0.0) + c.mem_used
    out += [c_info, c_cpu, c_cpu_l, c_mem, c_mem_l, c_restarts, c_running, c_isolated, c_oom, c_started]

    # -- node totals (need the containers' pass)
    n_cpu = _fam("berth_node_cpu_usage_cores", "CPU used by the node's running containers", "node")
    n_mem = _fam("berth_node_memory_usage_bytes", "Memory used by the node's running containers (docker CLI "
                 "formula)", "node")
    n_cpu_d = _fam("berth_node_cpu_density_ratio", "Container CPU used / node CPUs", "node")
    n_mem_d = _fam("berth_node_memory_density_ratio", "Container memory used / node memory", "node")
    n_states = _fam("berth_node_containers", "Containers on the node by state", "node", "state")
    for name, n in fresh.items():
        tkey: tuple[str, ...] = (name,)
        for cs in CONTAINER_STATES:
            n_states.add((name, cs), float(node_counts.get((name, cs), 0)))
        if ("cpu", name) not in unknown:
            used = node_cpu.get(name, 0.0)
            n_cpu.add(tkey, used)
            if n.cpus:
                n_cpu_d.add(tkey, used / n.cpus)
        if ("mem", name) not in unknown:
            used_b = node_mem.get(name, 0.0)
            n_mem.add(tkey, used_b)
            if n.mem_total:
                n_mem_d.add(tkey, used_b / n.mem_total)
    out += [n_cpu, n_mem, n_cpu_d, n_mem_d, n_states]

    # -- tenants
    t_cpu = _fam("berth_tenant_cpu_usage_cores", "CPU used by the tenant's running containers on fresh nodes",
                 "tenant")
    t_mem = _fam("berth_tenant_memory_usage_bytes", "Memory used by the tenant's running containers on fresh "
                 "nodes", "tenant")
    t_cpu_q = _fam("berth_tenant_cpu_quota_cores", "The tenant's CPU quota from the inventory", "tenant")
    t_mem_q = _fam("berth_tenant_memory_quota_bytes", "The tenant's memory quota from the inventory", "tenant")
    t_states = _fam("berth_tenant_containers", "The tenant's containers by state; `unknown` for those on nodes "
                    "that are not fresh", "tenant", "state")
    for t in snap.tenants:
        qkey: tuple[str, ...] = (t.name,)
        if ("tcpu", t.name) not in unknown:
            t_cpu.add(qkey, ten_cpu.get(t.name, 0.0))
        if ("tmem", t.name) not in unknown:
            t_mem.add(qkey, ten_mem.get(t.name, 0.0))
        if t.cpu_quota is not None:
            t_cpu_q.add(qkey, t.cpu_quota)
        if t.mem_quota is not None:
            t_mem_q.add(qkey, float(t.mem_quota))
        for ts in (*CONTAINER_STATES, "unknown"):
            t_states.add((t.name, ts), float(ten_counts.get((t.name, ts), 0)))
    out += [t_cpu, t_mem, t_cpu_q, t_mem_q, t_states]
    return out


def render_text(fams: Iterable[Family]) -> bytes:
    """The text exposition format 0.0.4 (what Prometheus scrapes), written directly. Values are Python's
    float repr (`1.0`, `2.5e-05`, `inf`, `nan`), which Prometheus reads as Go's ParseFloat does."""
    out: list[str] = []
    add = out.append
    for f in fams:
        name = f.sample_name
        add(f"# HELP {name} {f.help.replace(chr(92), chr(92) * 2)}\n# TYPE {name} {f.kind}\n")
        if f.labels:
            add("".join([f"{name}{{{text}}} {v!r}\n" for _, text, v in f.rows]))
        else:
            add("".join([f"{name} {v!r}\n" for _, _, v in f.rows]))
    return "".join(out).encode()


class SnapshotCollector(Collector):
    """A prometheus-client custom collector over ``source()`` (the poller's latest snapshot).

    ``stale_after`` is ``[alerts] stale_after``: a node whose newest data is older counts as unknown.
    ``shard`` ("K/N" or "") goes on ``berth_poller_info`` so dashboards can tell shards apart.
    """

    def __init__(self, source: SnapshotSource, *, stale_after: float = 15.0, shard: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.stale_after = stale_after
        self.shard = shard
        self.clock = clock

    def families(self) -> list[Family]:
        return families(self.source(), now=self.clock(), stale_after=self.stale_after, shard=self.shard)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # the series depend on the fleet: an unchecked collector

    def collect(self) -> Iterator[Metric]:
        for f in self.families():
            cls = CounterMetricFamily if f.kind == "counter" else GaugeMetricFamily
            metric = cls(f.name, f.help, labels=list(f.labels))
            for values, _, v in f.rows:
                metric.add_metric(list(values), v)
            yield metric
