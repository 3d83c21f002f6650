"""Stats sample decoding and the CPU and memory formulas.

The stream gives `precpu_stats` too, but we keep our own previous sample:
after a reconnect, or with one-shot samples, precpu is empty or stale.

Two CPU formulas, one per engine:

* dockerd: the docker CLI's Δcontainer / Δ`system_cpu_usage` × online CPUs (the reference,
  compared with `docker stats` in the tests).
* Podman: its compatible `system_cpu_usage` is not a sum over every CPU, so that formula
  over-reads (a container capped at 0.5 CPU read as 90-165 %).  What holds on both engines
  is the container's CPU time over the wall time between the samples' `read` stamps:
  Δ`total_usage` / Δ`read` (both ns) — `cpu_percent_by_read`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson


@dataclass(frozen=True, slots=True)
class StatsSample:
    cpu_total: int  # ns of CPU the container used, cumulative
    system_cpu: int  # ns of CPU the host used, cumulative (0 when missing)
    online_cpus: int
    mem_usage: int
    mem_used: int  # usage minus inactive file pages, as the docker CLI shows it
    mem_limit: int
    read_ns: int = 0  # wall time of the sample (unix ns) from `read`, 0 when absent or zero time


def _num(doc: Any, key: str) -> int:
    value = doc.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value < 0:
        raise ValueError(f"stats field {key!r} is not a counter: {str(value)[:40]!r}")
    return int(value)


def mem_used(usage: int, stats: Any) -> int:
    """The docker CLI's formula: usage - total_inactive_file (cgroup v1), else - inactive_file (v2),
    each only when smaller than usage."""
    if isinstance(stats, dict):
        v1 = stats.get("total_inactive_file")
        if isinstance(v1, int) and not isinstance(v1, bool) and 0 <= v1 < usage:
            return usage - v1
        v2 = stats.get("inactive_file", 0)
        if isinstance(v2, int) and not isinstance(v2, bool) and 0 <= v2 < usage:
            return usage - v2
    return usage


def parse_read_ns(text: Any) -> int:
    """Unix ns of an RFC 3339 `read` stamp with up to ns precision; 0 for absent or Go's zero time."""
    if not isinstance(text, str) or not text or text.startswith("0001-01-01"):
        return 0
    body = text.strip()
    zone = ""
    if body.endswith("Z"):
        body, zone = body[:-1], "+00:00"
    elif len(body) > 6 and body[-6] in "+-" and body[-3] == ":":
        body, zone = body[:-6], body[-6:]
    frac = 0
    if "." in body:
        body, _, digits = body.partition(".")
        if not digits.isdigit():
            raise ValueError(f"stats field 'read' is not a time: {text[:40]!r}")
        frac = int(digits[:9].ljust(9, "0"))
    try:
        whole = datetime.fromisoformat(body + (zone or "+00:00"))
    except ValueError as exc:
        raise ValueError(f"stats field 'read' is not a time: {text[:40]!r}") from exc
    seconds = int((whole - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    return seconds * 1_000_000_000 + frac


def decode(doc: Any) -> StatsSample:
    """Decode one stats document (already parsed JSON). Raises ValueError on nonsense."""
    if not isinstance(doc, dict):
        raise ValueError("stats sample is not a JSON object")
    cpu = doc.get("cpu_stats")
    usage = cpu.get("cpu_usage") if isinstance(cpu, dict) else None
    if not isinstance(cpu, dict) or not isinstance(usage, dict):
        raise ValueError("stats sample has no cpu_stats.cpu_usage")
    online = _num(cpu, "online_cpus")
    if online <= 0:
        percpu = usage.get("percpu_usage")
        online = len(percpu) if isinstance(percpu, list) else 0
    mem = doc.get("memory_stats")
    if mem is None:
        mem = {}
    if not isinstance(mem, dict):
        raise ValueError("stats field 'memory_stats' is not an object")
    usage_bytes = _num(mem, "usage")
    return StatsSample(
        cpu_total=_num(usage, "total_usage"),
        system_cpu=_num(cpu, "system_cpu_usage"),
        online_cpus=online,
        mem_usage=usage_bytes,
        mem_used=mem_used(usage_bytes, mem.get("stats")),
        mem_limit=_num(mem, "limit"),
        read_ns=parse_read_ns(doc.get("read")),
    )


def decode_libpod(doc: Any) -> StatsSample | None:
    """Decode one report of Podman's own stats stream (`/libpod/containers/stats`), the one
    that honours `interval` (its compat stream samples every 5 s whatever is asked).

    None when the report holds no sample (a stopped container's stream keeps sending all-zero
    reports without a time stamp); ValueError on an
    error report or nonsense. `SystemNano` is the wall time of the sample (unix ns), `CPUNano`
    the container's cumulative CPU time: what `cpu_percent_by_read` needs.
    """
    if not isinstance(doc, dict):
        raise ValueError("stats report is not a JSON object")
    err = doc.get("Error")
    if err:
        raise ValueError(f"podman stats error: {str(err)[:200]}")
    reports = doc.get("Stats")
    if not reports:
        return None
    if not isinstance(reports, list) or not isinstance(reports[0], dict):
        raise ValueError("stats report 'Stats' is not a list of objects")
    one = reports[0]
    if not one.get("SystemNano"):
        return None  # a stopped container's report: all zeros, no time stamp
    percpu = one.get("PerCPU")
    usage = _num(one, "MemUsage")
    return StatsSample(
        cpu_total=_num(one, "CPUNano"),
        system_cpu=0,
        online_cpus=len(percpu) if isinstance(percpu, list) else 0,
        mem_usage=usage,
        mem_used=usage,
        mem_limit=_num(one, "MemLimit"),
        read_ns=_num(one, "SystemNano"),
    )


def decode_bytes(raw: bytes) -> StatsSample:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from exc
    return decode(doc)


def cpu_percent(prev: StatsSample | None, cur: StatsSample) -> float | None:
    """CPU % where 100 = one full core: Δcontainer / Δsystem × online_cpus × 100.

    None when there is nothing to compare (first sample, or the system counter did
    not move); 0.0 when the system moved but the container did not (idle).
    """
    if prev is None:
        return None
    system_delta = cur.system_cpu - prev.system_cpu
    if system_delta <= 0:
        return None
    cpu_delta = cur.cpu_total - prev.cpu_total
    if cpu_delta <= 0:
        return 0.0
    return cpu_delta / system_delta * cur.online_cpus * 100.0


def cpu_percent_by_read(prev: StatsSample | None, cur: StatsSample) -> float | None:
    """CPU % where 100 = one full core: Δcontainer CPU ns / Δ`read` wall ns × 100.

    Holds on every engine (no host counter involved). None when there is nothing to compare
    (first sample, a missing or non-advancing `read`); 0.0 when the container did not run.
    """
    if prev is None or not prev.read_ns or not cur.read_ns:
        return None
    wall = cur.read_ns - prev.read_ns
    if wall <= 0:
        return None
    cpu_delta = cur.cpu_total - prev.cpu_total
    if cpu_delta <= 0:
        return 0.0
    return cpu_delta / wall * 100.0


@dataclass(frozen=True, slots=True)
class StatsReader:
    """Where one engine's stats come from and how they read: the poller asks `for_engine`."""

    engine: str
    stream_path: Callable[[str], str]  # container id -> path of a stream of 1 s samples
    oneshot_path: Callable[[str], str]  # container id -> path of a single sample
    decode: Callable[[Any], StatsSample | None]  # None: the document holds no sample
    cpu_percent: Callable[[StatsSample | None, StatsSample], float | None]


DOCKER = StatsReader(
    "docker",
    lambda cid: f"/containers/{quote(cid, safe='')}/stats?stream=1",
    lambda cid: f"/containers/{quote(cid, safe='')}/stats?stream=false&one-shot=true",
    decode,
    cpu_percent,
)
# Podman's compat stats stream samples every 5 s and ignores `interval`; its own stream takes
# `interval=1`. Its `stream=false` answers at once (no second sample, zeroed precpu): fine,
# since we keep our own previous sample and read CPU by wall time.
PODMAN = StatsReader(
    "podman",
    lambda cid: f"/libpod/containers/stats?containers={quote(cid, safe='')}&stream=true&interval=1",
    lambda cid: f"/libpod/containers/stats?containers={quote(cid, safe='')}&stream=false",
    decode_libpod,
    cpu_percent_by_read,
)


def for_engine(engine: str) -> StatsReader:
    return PODMAN if engine == "podman" else DOCKER
