"""A loopback TCP proxy to a unix socket that adds latency on demand (a userspace netem).

`DelayProxy(upstream_socket)` listens on 127.0.0.1:<free port>; every chunk, in
either direction, is delivered `delay` seconds after it arrived, in order, so
throughput is not serialized by the delay (a delay line, like netem, not a
stop-and-wait).  `delay` can be changed while connections are open.  It runs
on its own thread and event loop so the poller under test does not share them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Self


class DelayProxy:
    def __init__(self, upstream: str, delay: float = 0.0) -> None:
        self.upstream = upstream
        self.delay = delay  # seconds, one way
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="delay-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("delay proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
        for task in asyncio.all_tasks() - {asyncio.current_task()}:
            task.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.upstream)
        except OSError:
            writer.close()
            return
        pumps = [asyncio.create_task(self._pump(reader, up_writer)),
                 asyncio.create_task(self._pump(up_reader, writer))]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass
        finally:
            for p in pumps:
                p.cancel()
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        line: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await line.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    dst.write_eof() if dst.can_write_eof() else dst.close()
                    return
                dst.write(data)
                await dst.drain()

        out = asyncio.create_task(deliver())
        try:
            while True:
                data = await src.read(65536)
                line.put_nowait((time.monotonic() + self.delay, data))
                if not data:
                    break
            await out
        except (ConnectionError, asyncio.CancelledError):
            out.cancel()
