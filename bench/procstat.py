"""Process CPU accounting shared by the benchmarks."""

from __future__ import annotations

import psutil


def cpu_of(procs: list[psutil.Process]) -> float:
    """User + system CPU seconds of these processes so far; processes that have exited count 0."""
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total
