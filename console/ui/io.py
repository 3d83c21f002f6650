"""Engine I/O for the UI, kept off the UI thread.

Detail data beyond the snapshot (inspect, logs) comes from the Engine API. The
calls run on one background event loop (thread "berth-ui-io") that owns the
`EngineClient`s; the UI awaits `asyncio.wrap_future` of them from workers, so
the UI loop never parses a response or waits on a socket. Cancelling the UI
worker cancels the I/O task.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Generic, TypeVar
from urllib.parse import quote

T = TypeVar("T")
ClientFactory = Callable[[str], Any]  # node name -> EngineClient-like


class EngineIO:
    def __init__(self, factory: ClientFactory | None) -> None:
        self.factory = factory
        self._clients: dict[str, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self.factory is not None

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def main() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=main, name="berth-ui-io", daemon=True)
                self._thread.start()
                ready.wait(5)
                self._loop = loop
            return self._loop

    def _client(self, node: str) -> Any:
        client = self._clients.get(node)
        if client is None:
            assert self.factory is not None
            client = self._clients[node] = self.factory(node)
        return client

    def submit(self, make: Callable[[Any], Coroutine[Any, Any, T]], node: str) -> Future[T]:
        """Run `make(client_for(node))` on the I/O loop."""
        loop = self._ensure_loop()

        async def run() -> T:
            return await make(self._client(node))

        return asyncio.run_coroutine_threadsafe(run(), loop)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await any coroutine (an Actions call) on the I/O loop."""
        future = asyncio.run_coroutine_threadsafe(coro, self._ensure_loop())
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise

    def start(self, coro: Coroutine[Any, Any, T]) -> Running[T]:
        """Start ``coro`` (an action's execute) on the I/O loop; the handle can stop it and wait for its clean-up."""
        loop = self._ensure_loop()
        holder: dict[str, asyncio.Task[Any]] = {}

        async def run() -> T:
            task = asyncio.current_task()
            assert task is not None
            holder["task"] = task
            return await coro

        return Running(asyncio.run_coroutine_threadsafe(run(), loop), loop, holder)

    async def call(self, make: Callable[[Any], Coroutine[Any, Any, T]], node: str) -> T:
        future = self.submit(make, node)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return

        async def shutdown() -> None:
            for client in self._clients.values():
                close = getattr(client, "aclose", None)
                if close is not None:
                    try:
                        await close()
                    except Exception:  # noqa: BLE001 - closing best effort at exit
                        pass

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(2)
        except Exception:  # noqa: BLE001
            pass
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(2)


class Running(Generic[T]):
    """An action on the I/O loop. ``stop`` cancels its task there, so its own clean-up (the audit record's
    end, the lock's release) runs before ``result`` raises CancelledError in the UI."""

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


async def log_chunks(client: Any, cid: str, tail: int = 200, follow: bool = True) -> AsyncIterator[bytes]:
    """GET /containers/{id}/logs as raw chunks (multiplexed unless the container has a TTY)."""
    if hasattr(client, "log_chunks"):  # test doubles and future EngineClient.logs
        async for chunk in client.log_chunks(cid, tail=tail, follow=follow):
            yield chunk
        return
    params = {"follow": "1" if follow else "0", "stdout": "1", "stderr": "1", "tail": str(tail), "timestamps": "0"}
    async with client.stream("GET", f"/containers/{quote(cid, safe='')}/logs", params=params,
                             read_timeout=None) as resp:
        async for chunk in resp.aiter_raw():
            yield chunk
