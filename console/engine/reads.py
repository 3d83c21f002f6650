"""Engine reads off the caller's event loop: one background loop (IOLoop) and the detail reads on it.

A console's UI loop must never parse a response or wait on a socket: inspect and logs run on an
``IOLoop`` that owns one EngineClient per node (``EngineReads``), and the caller awaits them from its
own loop. Cancelling the awaiting task cancels the I/O there.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from console.config import Inventory
from console.engine.client import EngineClient
from console.engine.errors import EngineError

T = TypeVar("T")
ChunkFn = Callable[[bytes], None]
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

    def start(self, coro: Coroutine[Any, Any, T]) -> Running[T]:
        """Start ``coro`` on the background loop; the handle can stop it and wait for its clean-up."""
        holder: dict[str, asyncio.Task[Any]] = {}

        async def run() -> T:
            task = asyncio.current_task()
            assert task is not None
            holder["task"] = task
            return await coro

        loop = self.loop()
        return Running(asyncio.run_coroutine_threadsafe(run(), loop), loop, holder)

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


class Running(Generic[T]):
    """A coroutine on the I/O loop. ``stop`` cancels its task there, so its own clean-up (an action's
    audit end record, its lock's release) runs before ``result`` raises CancelledError to the caller."""

    def __init__(self, future: Future[T], loop: asyncio.AbstractEventLoop,
                 holder: dict[str, asyncio.Task[Any]]) -> None:
        self.future, self._loop, self._holder = future, loop, holder
        self.stopped = False

    async def result(self) -> T:
        return await asyncio.wrap_future(self.future)

    def stop(self) -> None:
        self.stopped = True

        def cancel() -> None:
            task = self._holder.get("task")
            if task is not None:
                task.cancel()
            else:
                self.future.cancel()

        self._loop.call_soon_threadsafe(cancel)


class EngineReads:
    """Inspect and logs through one EngineClient per node, kept on the I/O loop."""

    def __init__(self, inventory: Inventory, io: IOLoop,
                 unknown: Callable[[str], str] = lambda node: f"unknown node {node!r}") -> None:
        self._configs = {n.name: n for n in inventory.nodes}
        self._unknown = unknown  # the refusal for a node this inventory does not have
        self._clients: dict[str, EngineClient] = {}
        self.io = io
        io.on_close(self._close)

    def _client(self, node: str) -> EngineClient:
        client = self._clients.get(node)
        if client is None:
            if node not in self._configs:
                raise EngineError(node, "connect", self._unknown(node))
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
