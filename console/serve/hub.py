"""One poller, many consoles: the server's LocalFeed shared by every session.

Each session's app gets a ``SessionFeed``: the one feed's snapshots (a session that falls behind
skips to the newest, since BerthApp lets a newer snapshot replace an unprocessed one), its detail
reads (inspect, logs) through the feed's own engine clients, and a say in which containers are
kept at the full sample rate (the union of what every session has on screen). A session never
opens an Engine API connection of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

from console.fleet.model import FleetSnapshot
from console.local import LocalFeed
from console.ports import ChunkFn, SnapshotFn

log = logging.getLogger(__name__)


class FeedHub:
    def __init__(self, feed: LocalFeed) -> None:
        self.feed = feed
        self._subscribers: dict[int, list[SnapshotFn]] = {}
        self._focus: dict[int, frozenset[str]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        feed.subscribe(self._publish)

    def _publish(self, snapshot: FleetSnapshot) -> None:
        with self._lock:
            deliveries = [fn for fns in self._subscribers.values() for fn in fns]
        for deliver in deliveries:
            try:
                deliver(snapshot)
            except Exception:
                log.exception("session snapshot delivery failed")

    def view(self) -> SessionFeed:
        with self._lock:
            key = next(self._ids)
            self._subscribers[key] = []
        return SessionFeed(self, key)

    @property
    def sessions(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def _subscribe(self, key: int, fn: SnapshotFn) -> None:
        with self._lock:
            fns = self._subscribers.get(key)
            if fns is not None and fn not in fns:
                fns.append(fn)

    def _set_focus(self, key: int, ids: frozenset[str] | None) -> None:
        with self._lock:
            if ids:
                self._focus[key] = ids
            else:
                self._focus.pop(key, None)
            union = frozenset().union(*self._focus.values()) if self._focus else frozenset()
        self.feed.focus(union)

    def _drop(self, key: int) -> None:
        with self._lock:
            self._subscribers.pop(key, None)
            had_focus = self._focus.pop(key, None) is not None
        if had_focus:
            self._set_focus(key, None)


class SessionFeed:
    """A FleetFeed (console.ports) for one session over the shared feed. The server owns the poller:
    ``start`` has nothing to start, and ``stop`` only unsubscribes this session."""

    def __init__(self, hub: FeedHub, key: int) -> None:
        self._hub = hub
        self._key = key

    @property
    def latest(self) -> FleetSnapshot | None:
        return self._hub.feed.latest

    @property
    def is_started(self) -> bool:
        return True

    @property
    def reads(self) -> str | None:
        return self._hub.feed.reads

    def subscribe(self, on_snapshot: SnapshotFn) -> None:
        self._hub._subscribe(self._key, on_snapshot)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self._hub._drop(self._key)

    def focus(self, ids: frozenset[str]) -> None:
        self._hub._set_focus(self._key, ids)

    def refresh(self, node: str, container_id: str | None = None) -> None:
        self._hub.feed.refresh(node, container_id)

    async def inspect(self, node: str, container_id: str) -> dict[str, Any]:
        return await self._hub.feed.inspect(node, container_id)

    async def follow_logs(self, node: str, container_id: str, on_chunk: ChunkFn, *, tail: int = 200,
                          follow: bool = True) -> None:
        await self._hub.feed.follow_logs(node, container_id, on_chunk, tail=tail, follow=follow)

    def engine(self, node: str) -> FeedClient:
        """What BerthApp's detail and logs screens call a node's client: here, the shared feed's reads."""
        return FeedClient(self, node)


class FeedClient:
    """The two calls the console's detail screens make on an engine client, answered by the feed."""

    def __init__(self, feed: SessionFeed, node: str) -> None:
        self.feed = feed
        self.node = node

    async def inspect(self, container_id: str) -> dict[str, Any]:
        return await self.feed.inspect(self.node, container_id)

    async def log_chunks(self, container_id: str, tail: int = 200, follow: bool = True) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()

        def on_chunk(chunk: bytes) -> None:  # may run on the feed's I/O thread
            loop.call_soon_threadsafe(queue.put_nowait, chunk)

        task = asyncio.ensure_future(self.feed.follow_logs(self.node, container_id, on_chunk, tail=tail,
                                                           follow=follow))
        task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (chunk := await queue.get()) is not None:
                yield chunk
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        finally:
            task.cancel()
