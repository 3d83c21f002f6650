"""Stats documents as dockerd 20.10 writes them, for cgroup v1 and v2 hosts.

The two flavours differ the way the real daemon's do (recorded from 20.10): v1 has
`percpu_usage`, `max_usage` and the `total_*` memory counters (`total_inactive_file`
is what the docker CLI subtracts); v2 has `anon`/`file`/`inactive_file`, no per-CPU
usage, `pids_stats.limit`, and nulls for the blkio lists it cannot fill.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from console.sim.model import NodeSpec

if TYPE_CHECKING:
    from console.sim.daemon import Container

NS = 1_000_000_000
PAGE = 4096
TICK_NS = 10_000_000  # USER_HZ clock ticks, the unit of /proc/stat and cpuacct.stat
UNLIMITED_V1 = 9223372036854771712  # hierarchical_memory_limit of an unlimited cgroup v1
ZERO_TIME = "0001-01-01T00:00:00Z"
_BLKIO_KEYS = ("io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
               "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive", "io_time_recursive",
               "sectors_recursive")


def zero_cpu() -> dict[str, Any]:
    """The cpu_stats of "no sample": what precpu_stats is in a first or one-shot sample."""
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def system_cpu(spec: NodeSpec, started: float, now: float) -> int:
    """ns of CPU time of all the host's CPUs since boot, in 10 ms clock ticks like /proc/stat."""
    return int((spec.uptime + now - started) * 100) * spec.ncpu * TICK_NS


def empty(c: Container) -> dict[str, Any]:
    """What dockerd sends for a container that is not running: names only, zero everything."""
    return {"read": ZERO_TIME, "preread": ZERO_TIME, "pids_stats": {}, "blkio_stats": dict.fromkeys(_BLKIO_KEYS),
            "num_procs": 0, "storage_stats": {}, "cpu_stats": zero_cpu(), "precpu_stats": zero_cpu(),
            "memory_stats": {}, "name": "/" + c.name, "id": c.id}


def sample(spec: NodeSpec, c: Container, now: float, last_tick: float, read: str, system: int,
           interface: bool) -> dict[str, Any]:
    """One sample of a running (or paused) container, read at `read` (RFC 3339);
    `interface`: the container has a network interface."""
    v1 = spec.cgroup == "1"
    total = c.cpu_total(now, last_tick)
    cpu_usage: dict[str, Any] = {"total_usage": total}
    if v1:
        cpu_usage["percpu_usage"] = _percpu(c, total, spec.ncpu)
    cpu_usage["usage_in_kernelmode"] = int(total * c.kernel_frac) // TICK_NS * TICK_NS
    cpu_usage["usage_in_usermode"] = int(total * (1 - c.kernel_frac)) // TICK_NS * TICK_NS
    cpu = {"cpu_usage": cpu_usage, "system_cpu_usage": system, "online_cpus": spec.ncpu,
           "throttling_data": {"periods": int(c.periods), "throttled_periods": int(c.throttled),
                               "throttled_time": int(c.throttled_ns)}}
    rss = int(c.load.mem) // PAGE * PAGE
    cache = int(c.load.cache) // PAGE * PAGE
    pgfault = int(c.pgfault)
    io_r, io_w = int(c.io_read) // PAGE * PAGE, int(c.io_write) // PAGE * PAGE
    if v1:
        memory, blkio, pids = _v1_memory(c, rss, cache, pgfault, spec.mem_total), _v1_blkio(io_r, io_w), {
            "current": c.nprocs}
    else:
        memory, blkio, pids = _v2_memory(c, rss, cache, pgfault, spec.mem_total), _v2_blkio(io_r, io_w), {
            "current": c.nprocs, "limit": c.host_config.get("PidsLimit") or 4915}
    doc: dict[str, Any] = {"read": read, "preread": ZERO_TIME, "pids_stats": pids,
                           "blkio_stats": blkio, "num_procs": 0, "storage_stats": {}, "cpu_stats": cpu,
                           "precpu_stats": zero_cpu(), "memory_stats": memory, "name": "/" + c.name, "id": c.id}
    if interface:
        rx, tx = int(c.net_rx), int(c.net_tx)
        doc["networks"] = {"eth0": {"rx_bytes": rx, "rx_packets": rx // 900, "rx_errors": 0, "rx_dropped": 0,
                                    "tx_bytes": tx, "tx_packets": tx // 700, "tx_errors": 0, "tx_dropped": 0}}
    return doc


def _split(rss: int, cache: int) -> tuple[int, int, int, int]:
    """(active_anon, inactive_anon, active_file, inactive_file), page-aligned."""
    inactive_file = cache * 3 // 5 // PAGE * PAGE
    inactive_anon = rss // 10 // PAGE * PAGE
    return rss - inactive_anon, inactive_anon, cache - inactive_file, inactive_file


def _v1_memory(c: Container, rss: int, cache: int, pgfault: int, mem_total: int) -> dict[str, Any]:
    active_anon, inactive_anon, active_file, inactive_file = _split(rss, cache)
    usage = rss + cache + 2 * 1024 * 1024
    c.max_usage = max(c.max_usage, usage)
    memsw = c.host_config.get("MemorySwap") or 0
    per = {"active_anon": active_anon, "active_file": active_file, "cache": cache, "dirty": 0,
           "inactive_anon": inactive_anon, "inactive_file": inactive_file, "mapped_file": cache // 8 // PAGE * PAGE,
           "pgfault": pgfault, "pgmajfault": pgfault // 400, "pgpgin": pgfault // 2 + rss // PAGE,
           "pgpgout": pgfault // 2, "rss": rss, "rss_huge": 0, "unevictable": 0, "writeback": 0}
    stats = {**per, **{f"total_{k}": v for k, v in per.items()},
             "hierarchical_memory_limit": c.mem_limit or UNLIMITED_V1,
             "hierarchical_memsw_limit": memsw if memsw > 0 else UNLIMITED_V1}
    return {"usage": usage, "max_usage": c.max_usage, "stats": dict(sorted(stats.items())),
            "limit": c.mem_limit or mem_total}


def _v2_memory(c: Container, rss: int, cache: int, pgfault: int, mem_total: int) -> dict[str, Any]:
    active_anon, inactive_anon, active_file, inactive_file = _split(rss, cache)
    kernel_stack = 16384 * c.nprocs * 4
    slab = 600_000 + rss // 200 // PAGE * PAGE
    stats = {"active_anon": active_anon, "active_file": active_file, "anon": rss, "anon_thp": 0, "file": cache,
             "file_dirty": 0, "file_mapped": cache // 8 // PAGE * PAGE, "file_writeback": 0,
             "inactive_anon": inactive_anon, "inactive_file": inactive_file, "kernel_stack": kernel_stack,
             "pgactivate": pgfault // 50, "pgdeactivate": 0, "pgfault": pgfault, "pglazyfree": 0, "pglazyfreed": 0,
             "pgmajfault": pgfault // 400, "pgrefill": 0, "pgscan": 0, "pgsteal": 0, "shmem": 0, "slab": slab,
             "slab_reclaimable": slab // 2, "slab_unreclaimable": slab - slab // 2, "sock": 0,
             "thp_collapse_alloc": 0, "thp_fault_alloc": 0, "unevictable": 0, "workingset_activate": 0,
             "workingset_nodereclaim": 0, "workingset_refault": 0}
    return {"usage": rss + cache + kernel_stack + slab, "stats": stats, "limit": c.mem_limit or mem_total}


def _v1_blkio(io_r: int, io_w: int) -> dict[str, Any]:
    def ops(r: int, w: int) -> list[dict[str, Any]]:
        return [{"major": 8, "minor": 0, "op": op, "value": v}
                for op, v in (("Read", r), ("Write", w), ("Sync", w), ("Async", r), ("Discard", 0), ("Total", r + w))]

    out: dict[str, Any] = {key: [] for key in _BLKIO_KEYS}
    out["io_service_bytes_recursive"] = ops(io_r, io_w)
    out["io_serviced_recursive"] = ops(io_r // 16384, io_w // 16384)
    return out


def _v2_blkio(io_r: int, io_w: int) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(_BLKIO_KEYS)
    out["io_service_bytes_recursive"] = [{"major": 8, "minor": 0, "op": "read", "value": io_r},
                                         {"major": 8, "minor": 0, "op": "write", "value": io_w}]
    return out


def _percpu(c: Container, total: int, ncpu: int) -> list[int]:
    """The container's CPU time spread over the host's CPUs in fixed proportions (sums to total)."""
    parts = [int(total * w) for w in _percpu_weights(c, ncpu)]
    parts[-1] += total - sum(parts)
    return parts


def _percpu_weights(c: Container, ncpu: int) -> list[float]:
    if len(c.percpu_weights) != ncpu:
        rng = random.Random(f"{c.id}:percpu")
        weights = [rng.random() for _ in range(ncpu)]
        c.percpu_weights = [w / sum(weights) for w in weights]
    return c.percpu_weights


# ---------------------------------------------------------------------- the streaming fast path
#
# `sample()` above is the reference: a dict per sample, as dockerd's types.StatsJSON. At fleet
# scale (100 nodes x 100 streams) building and encoding that dict costs more than the client
# reading it, so the tick renders each container's sample once from a per-container template
# (the static parts encoded once, only the numbers formatted per tick) into a `Sample`: the
# document in the pieces a reader's own previous sample is spliced between. tests/sim
# test_sim_stats_fastpath.py holds it byte for byte to `go_json(with_pre(sample(...), pre))`.

_MARK = "\x01"  # a number placeholder in a template document; orjson writes it as "\u0001"


def go_json(doc: Any) -> bytes:
    """JSON as Go's encoder writes it: HTML-escaped, newline-terminated."""
    raw = orjson.dumps(doc)
    if b"<" in raw or b">" in raw or b"&" in raw:
        raw = raw.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")
    return raw + b"\n"


def with_pre(doc: dict[str, Any], pre: dict[str, Any] | None) -> dict[str, Any]:
    """A reader's view of a sample: its own previous sample as preread/precpu_stats (dockerd's
    getStatJSON); the first sample of a stream keeps the empty ones."""
    if pre is None or pre["read"] == ZERO_TIME:
        return doc
    return {**doc, "preread": pre["read"], "precpu_stats": pre["cpu_stats"]}


ZERO_CPU_JSON = go_json(zero_cpu())[:-1]
_ZERO_READ = ZERO_TIME.encode()
_READ, _PREREAD, _QUOTE, _CPU, _PRECPU = b'{"read":"', b'","preread":"', b'"', b',"cpu_stats":', b',"precpu_stats":'
_FIXED = len(_READ + _PREREAD + _QUOTE + _CPU + _PRECPU)


class Sample:
    """One container's sample at one tick, pre-encoded: `read`, the `cpu_stats` JSON, and the
    JSON between and after them, so `json(pre)` is a concatenation, not an encoding."""

    __slots__ = ("read", "cpu", "mid", "tail", "_pre_read", "_pre_cpu", "_chunk")

    def __init__(self, read: bytes, mid: bytes, cpu: bytes, tail: bytes) -> None:
        self.read = read  # RFC 3339, without quotes
        self.mid = mid  # ',"pids_stats":...,"storage_stats":{}'
        self.cpu = cpu  # the cpu_stats object
        self.tail = tail  # ',"memory_stats":...}\n'
        # The last chunk, and the previous sample's pieces it was made with (the pieces, not that Sample:
        # a Sample holding its predecessor would hold every sample since the stream began).
        self._pre_read: bytes | None = None
        self._pre_cpu: bytes | None = None
        self._chunk = b""

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Sample:
        """Any stats document (an empty one, a stopped container's) cut into the same pieces."""
        keys = list(doc)
        if keys[:2] != ["read", "preread"] or keys[6:8] != ["cpu_stats", "precpu_stats"]:
            raise ValueError(f"not a stats document in dockerd's field order: {keys}")
        body = go_json({k: doc[k] for k in keys[2:6]})
        tail = go_json({k: doc[k] for k in keys[8:]})
        return cls(doc["read"].encode(), b"," + body[1:-2], go_json(doc["cpu_stats"])[:-1], b"," + tail[1:])

    def _parts(self, pre: Sample | None) -> tuple[bytes, ...]:
        if pre is None or pre.read == _ZERO_READ:
            preread, precpu = _ZERO_READ, ZERO_CPU_JSON
        else:
            preread, precpu = pre.read, pre.cpu
        return (_READ, self.read, _PREREAD, preread, _QUOTE, self.mid, _CPU, self.cpu, _PRECPU, precpu, self.tail)

    def json(self, pre: Sample | None) -> bytes:
        """The document a reader whose previous sample was `pre` gets (newline-terminated)."""
        return b"".join(self._parts(pre))

    def chunk(self, pre: Sample | None) -> bytes:
        """`json(pre)` framed as one HTTP/1.1 chunk (as h11 frames it: lowercase hex size, CRLFs);
        the last one is kept, so readers of one container that share a previous sample share it."""
        pre_read, pre_cpu = (None, None) if pre is None else (pre.read, pre.cpu)
        if self._chunk and self._pre_read is pre_read and self._pre_cpu is pre_cpu:
            return self._chunk
        parts = self._parts(pre)
        size = _FIXED + len(self.read) + len(parts[3]) + len(self.mid) + len(self.cpu) + len(parts[9]) + len(self.tail)
        self._pre_read, self._pre_cpu = pre_read, pre_cpu
        self._chunk = b"".join((b"%x\r\n" % size, *parts, b"\r\n"))
        return self._chunk


def _template(doc: Any) -> tuple[bytes, tuple[str, ...]]:
    """A document whose changing numbers are `_MARK + name` strings -> (%-format, names in order)."""
    raw = go_json(doc)[:-1].replace(b"%", b"%%")
    names: list[str] = []
    parts = raw.split(b'"\\u0001')
    out = [parts[0]]
    for part in parts[1:]:
        name, rest = part.split(b'"', 1)
        names.append(name.decode())
        out.append(b"%d" + rest)
    return b"".join(out), tuple(names)


def _m(name: str) -> str:
    return _MARK + name


class StatsTemplate:
    """A running container's stats document with its static parts encoded once."""

    __slots__ = ("key", "mid", "cpu", "tail", "tail_values", "v1")

    def __init__(self, spec: NodeSpec, c: Container, key: tuple[Any, ...], interface: bool) -> None:
        self.key = key
        self.v1 = v1 = spec.cgroup == "1"
        ops = (("Read", "r"), ("Write", "w"), ("Sync", "w"), ("Async", "r"), ("Discard", None), ("Total", "t"))
        if v1:
            pids: dict[str, Any] = {"current": c.nprocs}
            blkio: dict[str, Any] = {key: [] for key in _BLKIO_KEYS}
            for field, prefix in (("io_service_bytes_recursive", "b"), ("io_serviced_recursive", "n")):
                blkio[field] = [{"major": 8, "minor": 0, "op": op, "value": _m(prefix + v) if v else 0}
                                for op, v in ops]
        else:
            pids = {"current": c.nprocs, "limit": c.host_config.get("PidsLimit") or 4915}
            blkio = dict.fromkeys(_BLKIO_KEYS)
            blkio["io_service_bytes_recursive"] = [{"major": 8, "minor": 0, "op": "read", "value": _m("br")},
                                                   {"major": 8, "minor": 0, "op": "write", "value": _m("bw")}]
        mid, mid_names = _template({"pids_stats": pids, "blkio_stats": blkio, "num_procs": 0, "storage_stats": {}})
        self.mid = b"," + mid[1:-1]  # formatted positionally, as render() lists them
        assert mid_names == (("br", "bw", "bw", "br", "bt", "nr", "nw", "nw", "nr", "nt") if v1 else ("br", "bw"))
        cpu_usage: dict[str, Any] = {"total_usage": _m("total")}
        if v1:
            cpu_usage["percpu_usage"] = [_m(f"cpu{i}") for i in range(spec.ncpu)]
        cpu_usage["usage_in_kernelmode"] = _m("kernel")
        cpu_usage["usage_in_usermode"] = _m("user")
        cpu, cpu_names = _template({"cpu_usage": cpu_usage, "system_cpu_usage": _m("system"), "online_cpus": spec.ncpu,
                                    "throttling_data": {"periods": _m("periods"), "throttled_periods": _m("throttled"),
                                                        "throttled_time": _m("throttled_ns")}})
        self.cpu = cpu  # formatted positionally: total, percpu..., kernel, user, system, throttling
        assert cpu_names[0] == "total" and cpu_names[-6:] == ("kernel", "user", "system", "periods", "throttled",
                                                              "throttled_ns")
        if v1:
            memsw = c.host_config.get("MemorySwap") or 0
            per: dict[str, Any] = {k: _m(k) for k in ("active_anon", "active_file", "cache")}
            per |= {"dirty": 0, **{k: _m(k) for k in ("inactive_anon", "inactive_file", "mapped_file", "pgfault",
                                                       "pgmajfault", "pgpgin", "pgpgout", "rss")},
                    "rss_huge": 0, "unevictable": 0, "writeback": 0}
            stats = {**per, **{f"total_{k}": v for k, v in per.items()},
                     "hierarchical_memory_limit": c.mem_limit or UNLIMITED_V1,
                     "hierarchical_memsw_limit": memsw if memsw > 0 else UNLIMITED_V1}
            memory: dict[str, Any] = {"usage": _m("usage"), "max_usage": _m("max_usage"),
                                      "stats": dict(sorted(stats.items())), "limit": c.mem_limit or spec.mem_total}
        else:
            stats = {"active_anon": 0, "active_file": 0, "anon": _m("rss"), "anon_thp": 0, "file": _m("cache"),
                     "file_dirty": 0, "file_mapped": _m("mapped_file"), "file_writeback": 0, "inactive_anon": 0,
                     "inactive_file": 0, "kernel_stack": _m("kernel_stack"), "pgactivate": _m("pgactivate"),
                     "pgdeactivate": 0, "pgfault": 0, "pglazyfree": 0, "pglazyfreed": 0, "pgmajfault": 0,
                     "pgrefill": 0, "pgscan": 0, "pgsteal": 0, "shmem": 0, "slab": _m("slab"),
                     "slab_reclaimable": _m("slab_reclaimable"), "slab_unreclaimable": _m("slab_unreclaimable"),
                     "sock": 0, "thp_collapse_alloc": 0, "thp_fault_alloc": 0, "unevictable": 0,
                     "workingset_activate": 0, "workingset_nodereclaim": 0, "workingset_refault": 0}
            stats |= {k: _m(k) for k in ("active_anon", "active_file", "inactive_anon", "inactive_file", "pgfault",
                                         "pgmajfault")}
            memory = {"usage": _m("usage"), "stats": stats, "limit": c.mem_limit or spec.mem_total}
        doc: dict[str, Any] = {"memory_stats": memory, "name": "/" + c.name, "id": c.id}
        if interface:
            doc["networks"] = {"eth0": {"rx_bytes": _m("rx"), "rx_packets": _m("rx_packets"), "rx_errors": 0,
                                        "rx_dropped": 0, "tx_bytes": _m("tx"), "tx_packets": _m("tx_packets"),
                                        "tx_errors": 0, "tx_dropped": 0}}
        tail, names = _template(doc)
        self.tail = b"," + tail[1:] + b"\n"
        self.tail_values: Callable[[dict[str, int]], tuple[int, ...]] = operator.itemgetter(*names)


def template_key(spec: NodeSpec, c: Container, interface: bool) -> tuple[Any, ...]:
    """What a container's template bakes in, besides the node's shape: a change means a new template."""
    hc = c.host_config
    return (c.name, c.mem_limit, hc.get("MemorySwap"), hc.get("PidsLimit"), c.nprocs, interface)


def render(spec: NodeSpec, c: Container, now: float, last_tick: float, read: bytes, system: int,
           interface: bool) -> Sample:
    """`sample()` as a `Sample`, from the container's template (rebuilt when what it bakes in changes)."""
    key = template_key(spec, c, interface)
    t: StatsTemplate | None = c.stats_template
    if t is None or t.key != key:
        t = c.stats_template = StatsTemplate(spec, c, key, interface)
    total = c.cpu_total(now, last_tick)
    kf = c.kernel_frac
    kernel = int(total * kf) // TICK_NS * TICK_NS
    user = int(total * (1 - kf)) // TICK_NS * TICK_NS
    throttling = (system, int(c.periods), int(c.throttled), int(c.throttled_ns))
    if t.v1:
        # _percpu(), without a Python-level loop: int(total * w) for each weight, the rest on the last CPU
        parts = list(map(int, map(float(total).__mul__, _percpu_weights(c, spec.ncpu))))
        parts[-1] += total - sum(parts)
        cpu = t.cpu % (total, *parts, kernel, user, *throttling)
    else:
        cpu = t.cpu % (total, kernel, user, *throttling)
    rss = int(c.load.mem) // PAGE * PAGE
    cache = int(c.load.cache) // PAGE * PAGE
    pgfault = int(c.pgfault)
    io_r, io_w = int(c.io_read) // PAGE * PAGE, int(c.io_write) // PAGE * PAGE
    inactive_file = cache * 3 // 5 // PAGE * PAGE
    inactive_anon = rss // 10 // PAGE * PAGE
    v: dict[str, int] = {"active_anon": rss - inactive_anon, "active_file": cache - inactive_file,
                         "inactive_anon": inactive_anon, "inactive_file": inactive_file, "rss": rss,
                         "cache": cache, "mapped_file": cache // 8 // PAGE * PAGE, "pgfault": pgfault,
                         "pgmajfault": pgfault // 400}
    if t.v1:
        usage = rss + cache + 2 * 1024 * 1024
        if usage > c.max_usage:
            c.max_usage = usage
        v |= {"usage": usage, "max_usage": c.max_usage, "pgpgin": pgfault // 2 + rss // PAGE,
              "pgpgout": pgfault // 2}
        mid = t.mid % (io_r, io_w, io_w, io_r, io_r + io_w,
                       io_r // 16384, io_w // 16384, io_w // 16384, io_r // 16384, io_r // 16384 + io_w // 16384)
    else:
        kernel_stack = 16384 * c.nprocs * 4
        slab = 600_000 + rss // 200 // PAGE * PAGE
        v |= {"usage": rss + cache + kernel_stack + slab, "kernel_stack": kernel_stack,
              "pgactivate": pgfault // 50, "slab": slab, "slab_reclaimable": slab // 2,
              "slab_unreclaimable": slab - slab // 2}
        mid = t.mid % (io_r, io_w)
    if interface:
        rx, tx = int(c.net_rx), int(c.net_tx)
        v |= {"rx": rx, "rx_packets": rx // 900, "tx": tx, "tx_packets": tx // 700}
    tail = t.tail % t.tail_values(v)
    return Sample(read, mid, cpu, tail)
