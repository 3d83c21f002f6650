"""One poller, many consoles: the server's LocalFeed shared by every session.

Each session's app gets a ``SessionFeed``: the one feed's snapshots (a session that falls behind
skips to the newest, since BerthApp lets a newer snapshot replace an unprocessed one), its detail
reads (inspect, logs) through the feed's own engine clients, and a say in which containers are
kept at the full sample rate (the union of what every session has on screen). A session never
opens an Engine API connection of its own.
"""

from __future__ import annotations

import itertools
import logging
import threading
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
