"""The ports (console.ports) over this process's own poller and actions: what `berth` runs.

``LocalFeed`` owns the fleet thread (the poller on its own event loop) and answers the
detail reads (inspect, logs) through engine clients on a second background loop, so
the UI loop never parses a response or waits on a socket. ``LocalActions`` runs
``console.actions`` on that same loop as one identity. A caller awaits both from its own
event loop; cancelling the awaiting task cancels the I/O.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from console.actions.core import Actions
from console.actions.interrupt import Interrupt
from console.actions.journal import MigrationRecord
from console.actions.types import ActionError, Plan, Result, Target
from console.config import Inventory
from console.engine.client import EngineClient
from console.engine.errors import EngineError
from console.fleet.model import FleetSnapshot
from console.identity import Identity
from console.ports import ChunkFn, ProgressFn, SnapshotFn

T = TypeVar("T")
log = logging.getLogger(__name__)


class IOLoop:
    """One background event loop on a daemon thread, started on first use."""

    def __init__(self, name: str = "berth-io") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closers: list[Callable[[], Coroutine[Any, Any, None]]] = []

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def main() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=main, name=self.name, daemon=True)
                self._thread.start()
                ready.wait(5)
                self._loop = loop
            return self._loop

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the background loop from any other loop; cancelling cancels it there."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop())
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise

    def on_close(self, closer: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``closer()`` on the loop before it stops (client pools, Actions), once however often it is
        registered (a server wraps one Actions in a LocalActions per session)."""
        if closer not in self._closers:
            self._closers.append(closer)

    def close(self, timeout: float = 2.0) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return

        async def shutdown() -> None:
            for closer in self._closers:
                try:
                    await closer()
                except Exception:
                    log.debug("closing %s failed", closer, exc_info=True)

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout)
        except Exception:
            log.debug("I/O loop shutdown timed out", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)


class EngineReads:
    """Inspect and logs through one EngineClient per node, kept on the I/O loop."""

    def __init__(self, inventory: Inventory, io: IOLoop) -> None:
        self._configs = {n.name: n for n in inventory.nodes}
        self._clients: dict[str, EngineClient] = {}
        self.io = io
        io.on_close(self._close)

    def _client(self, node: str) -> EngineClient:
        client = self._clients.get(node)
        if client is None:
            if node not in self._configs:
                raise EngineError(node, "inspect", None, f"unknown node {node!r}")
            client = self._clients[node] = EngineClient(self._configs[node])
        return client

    async def _close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)

    async def inspect(self, node: str, container_id: str) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            return await self._client(node).inspect(container_id)

        return await self.io.run(call())

    async def follow_logs(self, node: str, container_id: str, on_chunk: ChunkFn, *, tail: int = 200,
                          follow: bool = True) -> None:
        async def pump() -> None:
            async for chunk in self._client(node).logs(container_id, tail=tail, follow=follow):
                on_chunk(chunk)

        await self.io.run(pump())


class LocalFeed:
    """A FleetFeed over an in-process poller thread (console.fleet.runner.FleetThread)."""

    def __init__(self, inventory: Inventory, io: IOLoop | None = None, publish_interval: float = 0.5) -> None:
        from console.fleet.runner import FleetThread

        self._subscribers: list[SnapshotFn] = []
        self.thread = FleetThread(inventory, self._publish, publish_interval=publish_interval)
        self.io = io or IOLoop()
        self._reads = EngineReads(inventory, self.io)

    def _publish(self, snapshot: FleetSnapshot) -> None:
        for deliver in list(self._subscribers):
            try:
                deliver(snapshot)
            except Exception:
                log.exception("snapshot subscriber failed")

    @property
    def latest(self) -> FleetSnapshot | None:
        return self.thread.latest

    @property
    def is_started(self) -> bool:
        return self.thread.is_started

    @property
    def reads(self) -> str | None:
        return None

    def subscribe(self, on_snapshot: SnapshotFn) -> None:
        self._subscribers.append(on_snapshot)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_started:
            self.thread.stop()
        self.io.close()

    def focus(self, ids: frozenset[str]) -> None:
        self.thread.focus(ids)

    def refresh(self, node: str, container_id: str | None = None) -> None:
        self.thread.refresh(node, container_id)

    async def inspect(self, node: str, container_id: str) -> dict[str, Any]:
        return await self._reads.inspect(node, container_id)

    async def follow_logs(self, node: str, container_id: str, on_chunk: ChunkFn, *, tail: int = 200,
                          follow: bool = True) -> None:
        await self._reads.follow_logs(node, container_id, on_chunk, tail=tail, follow=follow)


class LocalActions:
    """An ActionsPort over console.actions.Actions in this process, as one identity.

    Every intent carries ``identity`` into ``Actions``, which refuses it there (read-only mode, a
    viewer's role) and writes it into the audit log: hiding keys in the UI is a courtesy, not the guard.
    """

    def __init__(self, actions: Actions, identity: Identity, io: IOLoop) -> None:
        self.actions = actions
        self._identity = identity
        self.io = io
        io.on_close(actions.aclose)

    @property
    def identity(self) -> Identity:
        return self._identity

    @property
    def unavailable(self) -> str | None:
        return None

    @property
    def read_only(self) -> bool:
        return self.actions.read_only or not self._identity.may_act

    async def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            return await self.io.run(coro)
        except ActionError:
            raise
        except EngineError as exc:
            raise ActionError(str(exc)) from None

    async def plan(self, action: str, target: Target | str, **params: Any) -> Plan:
        return await self._run(self.actions.plan(action, target, who=self._identity, **params))

    async def execute(self, plan: Plan, progress: ProgressFn | None = None,
                      interrupt: Interrupt | None = None) -> Result:
        return await self._run(self.actions.execute(plan, progress, who=self._identity, interrupt=interrupt))

    async def rank_targets(self, target: Target) -> list[tuple[str, str]]:
        return await self._run(self.actions.rank_targets(target))

    def unfinished(self) -> tuple[list[MigrationRecord], list[str]]:
        return self.actions.unfinished()

    def audit_entries(self, limit: int) -> list[dict[str, Any]]:
        return self.actions.audit.read(limit)

