"""Run a Fleet on its own thread and event loop, so the poller's CPU never stalls a UI loop.

Snapshots are handed to `on_snapshot` on the fleet thread; the receiver must be
thread-safe (Textual's `post_message` is), and should let a newer snapshot
replace an unprocessed older one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from console.config import Inventory
from console.fleet.model import FleetSnapshot
from console.fleet.poller import Fleet, Refresh


class FleetThread:
    def __init__(self, inventory: Inventory, on_snapshot: Callable[[FleetSnapshot], None],
                 publish_interval: float = 0.5) -> None:
        self.fleet = Fleet(inventory, publish_interval=publish_interval)
        self.fleet.subscribe(on_snapshot)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, name="berth-fleet", daemon=True)
        self._started = threading.Event()
        self._stopping: asyncio.Event | None = None

    @property
    def latest(self) -> FleetSnapshot | None:
        return self.fleet.latest

    @property
    def is_started(self) -> bool:
        return self._thread.is_alive() or self._started.is_set()

    def start(self) -> None:
        self._thread.start()
        self._started.wait(10)

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        async with self.fleet:
            self._started.set()
            await self._stopping.wait()

    def focus(self, ids: frozenset[str]) -> None:
        """Thread-safe: the container ids now on screen (sampled at full rate)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.fleet.set_focus, ids)

    def refresh(self, node: str, container_id: str | None = None) -> None:
        """Thread-safe: re-read this node's listing (and this container's inspect) now, an action
        just changed it; the snapshot with the result is published as soon as the reads answer."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            asyncio.run_coroutine_threadsafe(self.fleet.refresh(Refresh(node, container_id)), loop)

    def stop(self, timeout: float = 5.0) -> None:
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout)
