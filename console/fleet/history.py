"""Ring buffers of CPU and memory history, at least 10 minutes at 1 Hz."""

from __future__ import annotations

import threading
from array import array
from collections.abc import Iterable

DEFAULT_POINTS = 600  # 10 minutes at 1 Hz


class Ring:
    """Fixed-size ring of floats in a compact array (8 bytes a point, no per-point objects)."""

    __slots__ = ("_buf", "_next", "_count")

    def __init__(self, size: int = DEFAULT_POINTS) -> None:
        self._buf = array("d", bytes(8 * size))
        self._next = 0
        self._count = 0

    def append(self, value: float) -> None:
        self._buf[self._next] = value
        self._next = (self._next + 1) % len(self._buf)
        if self._count < len(self._buf):
            self._count += 1

    def __len__(self) -> int:
        return self._count

    def values(self) -> tuple[float, ...]:
        """Oldest first."""
        if self._count < len(self._buf):
            return tuple(self._buf[: self._count])
        return tuple(self._buf[self._next:]) + tuple(self._buf[: self._next])


class HistoryStore:
    """CPU (cores) and memory (bytes) series keyed by container id or node name.

    Written by the poller, read by any thread (the UI reads only what it shows),
    so every access takes a lock; copies out are immutable tuples.
    """

    def __init__(self, points: int = DEFAULT_POINTS) -> None:
        self.points = points
        self._cpu: dict[str, Ring] = {}
        self._mem: dict[str, Ring] = {}
        self._lock = threading.Lock()

    def record(self, key: str, cpu_cores: float, mem_bytes: float) -> None:
        self.record_many(((key, cpu_cores, mem_bytes),))

    def record_many(self, points: Iterable[tuple[str, float, float]]) -> None:
        """One point each for many keys under one lock (the poller's 1 Hz tick over a whole node)."""
        with self._lock:
            cpus, mems = self._cpu, self._mem
            for key, cpu_cores, mem_bytes in points:
                cpu = cpus.get(key)
                if cpu is None:
                    cpu = cpus[key] = Ring(self.points)
                    mems[key] = Ring(self.points)
                cpu.append(cpu_cores)
                mems[key].append(mem_bytes)

    def cpu(self, key: str) -> tuple[float, ...]:
        with self._lock:
            ring = self._cpu.get(key)
            return ring.values() if ring else ()

    def mem(self, key: str) -> tuple[float, ...]:
        with self._lock:
            ring = self._mem.get(key)
            return ring.values() if ring else ()

    def forget(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self._cpu.pop(key, None)
                self._mem.pop(key, None)

    def keys(self) -> set[str]:
        with self._lock:
            return set(self._cpu)
