"""Small GETs on a few kept-alive connections to one node: the poller's container inspects.

Each answer is small and comes at once; on a connection of its own, most of its cost on both
ends is the connection (socket, connect, accept, close). dockerd keeps HTTP/1.1 connections
open, so a pool of a few per node carries them one after another: the start-up inspects of
100 containers ride on 8 connections, not 100.

Not for one-shot stats: dockerd answers those at its stats collector's next round (up to 1 s
later, after the previous round), so each would hold a pooled connection for most of a second;
they keep a connection each, all waiting for the same round together.

Requests are callbacks, not tasks: `request(path, done)` queues, a free connection takes it,
and `done(status, body, error)` is called once. A request that finds its reused connection
closed by the peer before any byte of the answer is retried once on a fresh one (the peer may
close an idle connection at any moment; a GET is safe to resend).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import Callable

from console.engine.rawstream import MAX_HEADER, StreamError, connect_socket, endpoint_target, split_head
from console.engine.transport import Endpoint

MAX_BODY = 4 * 1024 * 1024  # as a stream line: an inspect or a stats document
POOL_SIZE = 8

Done = Callable[[int, bytes, Exception | None], None]


class _Request:
    __slots__ = ("path", "done", "retried", "timer")

    def __init__(self, path: str, done: Done) -> None:
        self.path = path
        self.done = done
        self.retried = False
        self.timer: asyncio.TimerHandle | None = None

    def finish(self, status: int, body: bytes, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        done, self.done = self.done, _spent
        done(status, body, exc)


def _spent(status: int, body: bytes, exc: Exception | None) -> None:
    """A request already answered (or timed out) ignores anything later."""


class _Conn(asyncio.Protocol):
    """One kept-alive connection: one request at a time, answers parsed as they arrive."""

    def __init__(self, pool: KeepAlivePool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.req: _Request | None = None
        self.used = False  # has carried an answer: a close before the next one may be the peer's idle close
        self._reset()

    def _reset(self) -> None:
        self.buf = bytearray()
        self.status = 0
        self.headers_done = False
        self.length: int | None = None
        self.chunked = False
        self.close_after = False
        self.body = bytearray()
        self.chunk_left = 0  # payload bytes still due in the current chunk; -1: its CRLF is due
        self.got_bytes = False

    # -- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.req is None:  # bytes nobody asked for: the connection cannot be trusted
            self.abort(StreamError("unrequested bytes on an idle connection"))
            return
        self.got_bytes = True
        self.buf += data
        try:
            if self._parse():
                req, status, body = self.req, self.status, bytes(self.body)
                self.req = None
                self.used = True
                keep = not self.close_after
                self._reset()
                req.finish(status, body, None)
                if keep:
                    self.pool._free(self)
                else:
                    self.abort(None)
        except StreamError as exc:
            self.abort(exc)

    def eof_received(self) -> bool | None:
        if self.req is not None and self.headers_done and self.length is None and not self.chunked:
            # an answer delimited by the peer closing (no length, not chunked): this is its end
            req, status, body = self.req, self.status, bytes(self.body)
            self.req = None
            req.finish(status, body, None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        req, self.req = self.req, None
        self.pool._lost(self, req, exc, self.got_bytes)

    # -- use ------------------------------------------------------------------------

    def send(self, req: _Request) -> None:
        assert self.transport is not None and self.req is None
        self.req = req
        self._reset()
        self.transport.write(self.pool.request_bytes(req.path))

    def abort(self, exc: Exception | None) -> None:
        """Drop the connection; the request on it, if any, fails with `exc`."""
        req, self.req = self.req, None
        if req is not None:
            req.finish(0, b"", exc or StreamError("connection closed"))
        if self.transport is not None:
            self.transport.abort()

    # -- parsing --------------------------------------------------------------------

    def _parse(self) -> bool:
        """True when the whole answer is in."""
        if not self.headers_done:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEADER:
                    raise StreamError("response headers exceed 64 KiB")
                return False
            self._headers(bytes(self.buf[:end]))
            del self.buf[: end + 4]
        if self.chunked:
            return self._dechunk()
        if self.length is not None:
            if len(self.buf) > self.length:
                raise StreamError("more bytes than the answer's Content-Length")
            self.body = self.buf
            return len(self.buf) == self.length
        if len(self.buf) > MAX_BODY:
            raise StreamError(f"answer exceeds {MAX_BODY} bytes")
        self.body = self.buf
        return False  # delimited by close: see eof_received

    def _headers(self, head: bytes) -> None:
        version, self.status, fields = split_head(head)
        self.close_after = version == "HTTP/1.0"
        for key, value in fields:
            if key == "transfer-encoding" and "chunked" in value.lower():
                self.chunked = True
            elif key == "content-length":
                if not value.isdigit():
                    raise StreamError(f"bad Content-Length {value[:20]!r}")
                self.length = int(value)
                if self.length > MAX_BODY:
                    raise StreamError(f"answer of {self.length} bytes exceeds the {MAX_BODY}-byte limit")
            elif key == "connection":
                self.close_after = "close" in value.lower()
        self.headers_done = True

    def _dechunk(self) -> bool:
        buf = self.buf
        pos = 0
        try:
            while True:
                if self.chunk_left > 0:
                    take = min(self.chunk_left, len(buf) - pos)
                    self.body += buf[pos:pos + take]
                    pos += take
                    self.chunk_left -= take
                    if len(self.body) > MAX_BODY:
                        raise StreamError(f"answer exceeds {MAX_BODY} bytes")
                    if self.chunk_left:
                        return False
                    self.chunk_left = -1
                if self.chunk_left < 0:
                    if len(buf) - pos < 2:
                        return False
                    pos += 2  # the CRLF after a chunk's payload
                    self.chunk_left = 0
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if len(buf) - pos > 1024:
                        raise StreamError("bad chunk header")
                    return False
                size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise StreamError(f"bad chunk size {size_text[:20]!r}") from None
                if size == 0:
                    end = buf.find(b"\r\n", eol + 2)  # trailers, if any, end with an empty line
                    if end < 0:
                        return False
                    if end != eol + 2:
                        end = buf.find(b"\r\n\r\n", eol)
                        if end < 0:
                            return False
                        end += 2
                    pos = end + 2
                    return True
                pos = eol + 2
                self.chunk_left = size
        finally:
            del buf[:pos]


class KeepAlivePool:
    """Up to `size` kept-alive connections to one endpoint, each carrying one GET at a time."""

    def __init__(self, endpoint: Endpoint, timeout: float, size: int = POOL_SIZE) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.size = size
        self._host, self._port, self._tls = endpoint_target(endpoint)
        if self._tls is not None:
            raise ValueError("the keep-alive pool is for plain connections (unix, tcp, ssh tunnel)")
        self._idle: list[_Conn] = []
        self._opening = 0
        self._conns: set[_Conn] = set()
        self._queue: deque[_Request] = deque()
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections_made = 0  # for tests and benchmarks: how many connections the pool has opened

    def request_bytes(self, path: str) -> bytes:
        return (f"GET {path} HTTP/1.1\r\nHost: {self._host}\r\nUser-Agent: berth\r\n"
                f"Accept: application/json\r\n\r\n").encode()

    def request(self, path: str, done: Done) -> None:
        """GET `path`; `done(status, body, None)` with the answer, or `done(0, b"", exc)`: once,
        within `timeout` seconds (a TimeoutError then)."""
        req = _Request(path, done)
        loop = asyncio.get_running_loop()
        req.timer = loop.call_later(self.timeout, self._expire, req)
        if self._closed:
            req.finish(0, b"", StreamError("connection pool closed"))
            return
        self._dispatch(req)

    async def get(self, path: str) -> tuple[int, bytes]:
        """The awaitable form of `request`: (status, body); raises what `done` would get."""
        fut: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()

        def done(status: int, body: bytes, exc: Exception | None) -> None:
            if fut.done():
                return
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result((status, body))
        self.request(path, done)
        return await fut

    def close(self) -> None:
        self._closed = True
        for req in list(self._queue):
            req.finish(0, b"", StreamError("connection pool closed"))
        self._queue.clear()
        for conn in list(self._conns):
            conn.abort(StreamError("connection pool closed"))
        self._idle.clear()
        for task in self._tasks:
            task.cancel()

    # -- internals ------------------------------------------------------------------

    def _dispatch(self, req: _Request) -> None:
        while self._idle:
            conn = self._idle.pop()
            if conn.transport is not None and not conn.transport.is_closing():
                conn.send(req)
                return
        self._queue.append(req)
        self._grow()

    def _grow(self) -> None:
        """One more connection for the queue, if the pool has room."""
        if self._queue and not self._closed and len(self._conns) + self._opening < self.size:
            self._opening += 1
            task = asyncio.get_running_loop().create_task(self._open())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                sock = await connect_socket(self.endpoint, self._host, self._port, None)
                create = loop.create_unix_connection if sock.family == socket.AF_UNIX else loop.create_connection
                _, conn = await create(lambda: _Conn(self), sock=sock)
        except BaseException as exc:
            self._opening -= 1
            if not self._conns and not self._opening:
                # nothing else will serve the queue: every queued request learns why
                why = exc if isinstance(exc, Exception) else StreamError("connection pool closed")
                while self._queue:
                    self._queue.popleft().finish(0, b"", why)
            if not isinstance(exc, Exception):
                raise
            return
        self._opening -= 1
        self.connections_made += 1
        if self._closed:
            conn.abort(None)
            return
        self._conns.add(conn)
        self._free(conn)

    def _free(self, conn: _Conn) -> None:
        while self._queue:
            req = self._queue.popleft()
            if req.done is _spent:
                continue  # expired while it waited
            conn.send(req)
            return
        self._idle.append(conn)

    def _lost(self, conn: _Conn, req: _Request | None, exc: Exception | None, got_bytes: bool) -> None:
        self._conns.discard(conn)
        with contextlib.suppress(ValueError):
            self._idle.remove(conn)
        if req is None or req.done is _spent:
            self._grow()  # requests queued behind this connection need another
            return
        if conn.used and not got_bytes and not req.retried and not self._closed:
            req.retried = True  # the peer closed an idle connection as we reused it: once more
            self._dispatch(req)
            return
        req.finish(0, b"", exc or StreamError("connection closed in the middle of the answer" if got_bytes
                                              else "connection closed before a response"))
        self._grow()

    def _expire(self, req: _Request) -> None:
        req.timer = None
        for conn in list(self._conns):
            if conn.req is req:
                conn.abort(TimeoutError())  # its state is unknown: the connection goes
                return
        with contextlib.suppress(ValueError):
            self._queue.remove(req)
        req.finish(0, b"", TimeoutError())
