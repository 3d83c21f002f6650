"""`berth --prometheus URL`: the console fed from PromQL instead of a local poller.

``PromFeed`` has the FleetFeed shape the console takes (console.ports): a background thread reads
the fleet from Prometheus every ``interval`` seconds (and at once after an action asks for a
refresh) and hands each snapshot to the subscribers. When Prometheus cannot be read the last
snapshot stays as it was, so its age grows and the console's `fleet-stale` alert says so.

Detail reads and actions need a node's Engine API: they work for nodes the local inventory
has, and are refused with one line for the rest (``not_local``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from console.config import Inventory
from console.engine.reads import ChunkFn, EngineReads, IOLoop
from console.fleet.model import FleetSnapshot
from console.metrics.promql import PromError, PromReader

log = logging.getLogger(__name__)
SnapshotFn = Callable[[FleetSnapshot], None]


def not_local(node: str, url: str) -> str:
    return (f"node {node!r} is not in the local inventory: Berth reads it from Prometheus ({url}) and cannot "
            "reach its Engine API; add it to the inventory to act on it or see its logs")


class PromFeed:
    def __init__(self, reader: PromReader, inventory: Inventory, on_snapshot: SnapshotFn | None = None,
                 interval: float = 2.0) -> None:
        self.reader = reader
        self.interval = interval
        self.local = {n.name for n in inventory.nodes}
        self._subscribers: list[SnapshotFn] = [on_snapshot] if on_snapshot else []
        self._latest: FleetSnapshot | None = None
        self.error: str | None = None  # the last read's failure, None once a read succeeds again
        self._thread = threading.Thread(target=self._main, name="berth-prometheus", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop = threading.Event()
        self._started = threading.Event()
        # Inspect and logs for the nodes the local inventory has; one line for the others.
        self.io = IOLoop("berth-prometheus-io")
        self._reads = EngineReads(inventory, self.io, unknown=lambda node: not_local(node, reader.url))

    # -- FleetFeed -------------------------------------------------------------------------------

    @property
    def latest(self) -> FleetSnapshot | None:
        return self._latest

    @property
    def is_started(self) -> bool:
        return self._started.is_set()

    @property
    def reads(self) -> str | None:
        return None  # per node: local nodes answer, the others are refused by name (not_local)

    def subscribe(self, on_snapshot: SnapshotFn) -> None:
        self._subscribers.append(on_snapshot)

    def start(self) -> None:
        self._thread.start()
        self._started.wait(10)

    def stop(self) -> None:
        self._stop.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)
        if self._thread.is_alive():
            self._thread.join(10)
        self.io.close()

    def focus(self, ids: frozenset[str]) -> None:
        """Nothing to tune: Prometheus has every container at the exporters' own rate."""

    def refresh(self, node: str, container_id: str | None = None) -> None:
        """Read again now (an action just changed something; the exporter shows it at its next scrape)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    # -- the reader thread ------------------------------------------------------------------------

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._started.set()
        try:
            while not self._stop.is_set():
                await self.read_once()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.interval)
                except TimeoutError:
                    pass
                self._wake.clear()
        finally:
            await self.reader.aclose()

    async def read_once(self) -> FleetSnapshot | None:
        try:
            snap = await self.reader.snapshot()
        except PromError as exc:
            if str(exc) != self.error:
                log.warning("%s", exc)
            self.error = str(exc)
            return None
        self.error = None
        self._latest = snap
        for deliver in list(self._subscribers):
            try:
                deliver(snap)
            except Exception:
                log.exception("snapshot subscriber failed")
        return snap

    # -- detail reads for the console -------------------------------------------------------------

    async def inspect(self, node: str, container_id: str) -> dict[str, Any]:
        return await self._reads.inspect(node, container_id)

    async def follow_logs(self, node: str, container_id: str, on_chunk: ChunkFn, *, tail: int = 200,
                          follow: bool = True) -> None:
        await self._reads.follow_logs(node, container_id, on_chunk, tail=tail, follow=follow)
