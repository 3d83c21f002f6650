"""Stats sample decoding and the docker CLI's CPU and memory formulas.

The stream gives `precpu_stats` too, but we keep our own previous sample:
after a reconnect, or with one-shot samples, precpu is empty or stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class StatsSample:
    cpu_total: int  # ns of CPU the container used, cumulative
    system_cpu: int  # ns of CPU the host used, cumulative (0 when missing)
    online_cpus: int
    mem_usage: int
    mem_used: int  # usage minus inactive file pages, as the docker CLI shows it
    mem_limit: int


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
