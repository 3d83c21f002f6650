"""Stats documents as dockerd 20.10 writes them, for cgroup v1 and v2 hosts.

The two flavours differ the way the real daemon's do (recorded from 20.10): v1 has
`percpu_usage`, `max_usage` and the `total_*` memory counters (`total_inactive_file`
is what the docker CLI subtracts); v2 has `anon`/`file`/`inactive_file`, no per-CPU
usage, `pids_stats.limit`, and nulls for the blkio lists it cannot fill.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

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
    if len(c.percpu_weights) != ncpu:
        rng = random.Random(f"{c.id}:percpu")
        weights = [rng.random() for _ in range(ncpu)]
        c.percpu_weights = [w / sum(weights) for w in weights]
    parts = [int(total * w) for w in c.percpu_weights]
    parts[-1] += total - sum(parts)
    return parts
