"""A lean reader for long-lived newline-delimited JSON streams (stats), on raw sockets.

httpx costs about 400 µs of CPU per stats sample once its stream machinery,
anyio and per-chunk objects are counted, and even a bare asyncio Protocol costs
~60 µs: one selector wake-up, handle and callback chain per sample, each run
with cold caches because samples trickle in one by one (dockerd's collector
walks its containers across the whole second). At fleet scale that is most of
a core. So every stats stream of an event loop lives on one private selector
(`StatsPump`) that the loop drains on a short tick: one `select(0)` per tick,
then one `recv` per ready socket and the lines parsed back to back.

The protocol (`LineStream`) speaks just enough HTTP/1.1 for
`GET /containers/{id}/stats?stream=1`: it writes one request, checks the status
line, de-chunks the body in place and hands each complete line (as bytes) to a
callback, with no task or coroutine per sample. Lines are bounded. Samples are
at most one tick (default 0.25 s) late, which a 1 Hz stream does not notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import socket
import ssl
import weakref
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

from console.engine.errors import body_text
from console.engine.transport import Endpoint

MAX_LINE = 4 * 1024 * 1024
MAX_HEADER = 64 * 1024
TICK = 0.25  # seconds between drains of a loop's stats sockets
RECV_SIZE = 64 * 1024
RECVS_PER_TICK = 16  # bound per stream and tick (1 MiB), so one firehose cannot starve the others
# A partial line this long is no stats sample (a 256-CPU node's is ~10 KiB): read it as it arrives,
# so an endless line meets MAX_LINE at the peer's speed, not at one socket buffer per tick.
HOT_LINE = 256 * 1024


class StreamError(Exception):
    def __init__(self, message: str, status: int | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail  # the daemon's own message, for an HTTP error


class StreamEnded(StreamError):
    """The peer closed the stream cleanly, at a line boundary (a whole one-shot answer, or dockerd
    ending a stats stream as its container stops)."""


class _Transport(Protocol):
    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


class LineStream:
    """One HTTP response body, split into lines; `on_line(line)` per line, `on_close(exc)` once.

    Driven like an asyncio Protocol (connection_made, data_received, eof_received,
    connection_lost), by a `StatsPump` transport."""

    def __init__(self, request: bytes, on_line: Callable[[bytes], None],
                 on_close: Callable[[Exception | None], None]) -> None:
        self._request = request
        self._on_line = on_line
        self._on_close = on_close
        self._transport: _Transport | None = None
        self._buf = bytearray()
        self._line = bytearray()
        self._headers_done = False
        self._chunked = False
        self._length: int | None = None  # Content-Length, when the peer sent one
        self._chunk_left = 0  # bytes of chunk payload still expected (then its CRLF)
        self._status = 0
        self._error_body = bytearray()
        self._closed = False
        self.last_rx = 0.0  # loop time of the newest bytes
        self.line_begun = 0.0  # loop time the pending partial line began (0 = none pending)

    @property
    def pending_line(self) -> int:
        """Bytes of the partial line held so far."""
        return len(self._line)

    # -- protocol ------------------------------------------------------------

    def connection_made(self, transport: _Transport) -> None:
        self._transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        """Bytes arrived; the caller has set `last_rx` to the loop time it read them."""
        try:
            if not self._headers_done:
                self._buf += data
                if not self._parse_headers():
                    return
                data = bytes(self._buf)
                self._buf.clear()
            if self._status != 200:
                self._error_body += data
                if len(self._error_body) > 64 * 1024:
                    self._fail(StreamError(f"HTTP {self._status} with an oversized body", self._status))
                elif self._length is not None and len(self._error_body) >= self._length:
                    # the whole error arrived; a keep-alive peer would never close on its own
                    self._fail(status_error(self._status, bytes(self._error_body[: self._length])))
                return
            if self._chunked:
                self._dechunk(data)
            elif self._length is not None:  # a whole answer of known size (one-shot): done at its end
                data = data[: self._length]
                self._length -= len(data)
                self._feed(data)
                if self._length == 0:
                    if self._line.strip():  # the body is complete, so its last line is too
                        last = bytes(self._line)
                        self._line.clear()
                        self._on_line(last)
                    self.close()
            else:
                self._feed(data)
        except StreamError as exc:
            self._fail(exc)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self._closed:
            return
        self._closed = True
        if self._headers_done and self._status != 200:
            self._on_close(status_error(self._status, bytes(self._error_body)))
        elif not self._headers_done:
            self._on_close(exc or StreamError("connection closed before a response"))
        elif self._line.strip():
            self._on_close(StreamError(f"stream ended in the middle of a line ({len(self._line)} bytes "
                                       "without a newline): truncated"))
        else:
            self._on_close(exc or StreamEnded("stream ended"))

    # -- control -------------------------------------------------------------

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self, reason: str | None = None) -> None:
        """Drop the connection; with a reason, that is what `on_close` reports."""
        if reason is not None:
            self._fail(StreamError(reason))
        elif self._transport is not None:
            self._transport.abort()

    # -- parsing -------------------------------------------------------------

    def _fail(self, exc: StreamError) -> None:
        if not self._closed:
            self._closed = True
            self._on_close(exc)
        if self._transport is not None:
            self._transport.abort()

    def _parse_headers(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEADER:
                raise StreamError("response headers exceed 64 KiB")
            return False
        _, self._status, fields = split_head(bytes(self._buf[:end]))
        del self._buf[: end + 4]
        for key, value in fields:
            if key == "transfer-encoding" and "chunked" in value.lower():
                self._chunked = True
            elif key == "content-length" and value.isdigit():
                self._length = int(value)
        self._headers_done = True
        return True

    def _dechunk(self, data: bytes) -> None:
        # Only an incomplete chunk header or CRLF is ever carried over, so the common case
        # (whole chunks in one read) walks `data` itself with no buffer copies.
        if self._buf:
            self._buf += data
            data = bytes(self._buf)
            self._buf.clear()
        pos = 0
        n = len(data)
        while pos < n:
            if self._chunk_left > 0:
                take = min(self._chunk_left, n - pos)
                self._feed(data[pos:pos + take] if take < n else data)
                pos += take
                self._chunk_left -= take
                if self._chunk_left == 0:
                    self._chunk_left = -2  # expect the CRLF after the payload
                continue
            if self._chunk_left < 0:
                need = -self._chunk_left
                if n - pos < need:
                    self._chunk_left = -(need - (n - pos))
                    return
                pos += need
                self._chunk_left = 0
                continue
            eol = data.find(b"\r\n", pos)
            if eol < 0:
                if n - pos > 1024:
                    raise StreamError("bad chunk header")
                self._buf += data[pos:]
                return
            size_text = data[pos:eol].split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise StreamError(f"bad chunk size {size_text[:20]!r}") from None
            pos = eol + 2
            if size == 0:
                self.close()  # last chunk: the daemon ended the stream
                return
            self._chunk_left = size

    def _feed(self, data: bytes | bytearray) -> None:
        line = self._line
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                if start < len(data) and not line:
                    self.line_begun = self.last_rx
                line += data[start:]
                if len(line) > MAX_LINE:
                    line.clear()
                    raise StreamError(f"stream line exceeds {MAX_LINE} bytes")
                return
            if line:
                line += data[start:nl]
                out = bytes(line)
                line.clear()
            else:
                out = bytes(data[start:nl])
            start = nl + 1
            self.line_begun = 0.0
            if out.strip():
                self._on_line(out)


def split_head(head: bytes) -> tuple[str, int, list[tuple[str, str]]]:
    """An HTTP/1.x response head (without its blank line): the version, the status, and each header
    as (lower-case name, stripped value), in order. StreamError if it is not an HTTP response."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise StreamError(f"not an HTTP response: {lines[0][:80]!r}")
    fields = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields.append((name.strip().lower(), value.strip()))
    return parts[0], int(parts[1]), fields


def status_error(status: int, body: bytes) -> StreamError:
    message = body_text(body) if body.strip() else "no body"
    return StreamError(f"HTTP {status}: {message}", status, message)


class _PumpTransport:
    """What LineStream needs of a transport, over a non-blocking socket that a StatsPump reads."""

    __slots__ = ("pump", "sock", "proto", "out", "closed", "tls", "immediate", "hot")

    def __init__(self, pump: StatsPump, sock: socket.socket, proto: LineStream, immediate: bool) -> None:
        self.pump = pump
        self.sock = sock
        self.proto = proto
        self.out = bytearray()  # the request, sent by open_line_stream before reading starts
        self.closed = False
        self.tls = isinstance(sock, ssl.SSLSocket)
        self.immediate = immediate  # read by the event loop as bytes arrive, not on the pump's tick
        self.hot = False  # moved to immediate reads while it holds an oversized partial line

    def write(self, data: bytes) -> None:
        self.out += data

    def close(self) -> None:
        self.pump.drop(self, None)

    abort = close

    def read(self, now: float) -> None:
        sock, proto = self.sock, self.proto
        for _ in range(RECVS_PER_TICK):
            try:
                data = sock.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except OSError as exc:  # reset, TLS alert, ...
                self.pump.drop(self, exc)
                return
            if not data:
                proto.eof_received()
                self.pump.drop(self, None)
                return
            proto.last_rx = now
            proto.data_received(data)
            if self.closed:
                return
            # A short read drained the socket; TLS may still hold decrypted bytes of a record.
            if len(data) < RECV_SIZE and not (self.tls and sock.pending()):  # type: ignore[attr-defined]
                break
        if not self.closed and self.hot != (proto.pending_line > HOT_LINE):
            self.pump.set_hot(self, not self.hot)


class StatsPump:
    """Every line stream of one event loop on one private selector, drained every `tick` seconds.

    The loop itself never watches these sockets: a tick costs one `select(0)` however
    many streams there are, and the samples that arrived since are parsed back to back."""

    _pumps: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, StatsPump] = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float = TICK) -> None:
        self.loop = loop
        self.tick = tick
        self._sel = selectors.DefaultSelector()
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> StatsPump:
        pump = cls._pumps.get(loop)
        if pump is None:
            pump = cls._pumps[loop] = cls(loop)
        return pump

    def __len__(self) -> int:
        return len(self._sel.get_map())

    def add(self, transport: _PumpTransport) -> None:
        if transport.immediate:  # someone awaits this answer: no tick of latency
            self.loop.add_reader(transport.sock.fileno(), self._read_now, transport)
            return
        self._sel.register(transport.sock, selectors.EVENT_READ, transport)
        if self._timer is None:
            self._timer = self.loop.call_later(self.tick, self._drain)

    def set_hot(self, transport: _PumpTransport, hot: bool) -> None:
        """Move a stream between the tick and reads as bytes arrive (see HOT_LINE)."""
        transport.hot = hot
        if transport.immediate:  # read as bytes arrive anyway
            return
        if hot:
            self._sel.unregister(transport.sock)
            self.loop.add_reader(transport.sock.fileno(), self._read_now, transport)
        else:
            self.loop.remove_reader(transport.sock.fileno())
            self._sel.register(transport.sock, selectors.EVENT_READ, transport)
            if self._timer is None:
                self._timer = self.loop.call_later(self.tick, self._drain)

    def _read_now(self, transport: _PumpTransport) -> None:
        if not transport.closed:
            transport.read(self.loop.time())

    def drop(self, transport: _PumpTransport, exc: Exception | None) -> None:
        """Close once; `connection_lost` follows on the loop, as asyncio transports do it."""
        if transport.closed:
            return
        transport.closed = True
        if transport.immediate or transport.hot:
            self.loop.remove_reader(transport.sock.fileno())
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(transport.sock)
        transport.sock.close()
        self.loop.call_soon(transport.proto.connection_lost, exc)

    def _drain(self) -> None:
        self._timer = None
        now = self.loop.time()
        for key, _ in self._sel.select(0):
            transport: _PumpTransport = key.data
            if not transport.closed:
                transport.read(now)
        if self._sel.get_map():
            self._timer = self.loop.call_at(now + self.tick, self._drain)


async def _io_ready(loop: asyncio.AbstractEventLoop, sock: socket.socket, read: bool) -> None:
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    fd = sock.fileno()
    (loop.add_reader if read else loop.add_writer)(fd, ready)
    try:
        await fut
    finally:
        (loop.remove_reader if read else loop.remove_writer)(fd)


async def _send_all(loop: asyncio.AbstractEventLoop, sock: socket.socket, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view):]
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
            await _io_ready(loop, sock, read=False)
        except ssl.SSLWantReadError:
            await _io_ready(loop, sock, read=True)


async def connect_socket(endpoint: Endpoint, host: str, port: int, tls: ssl.SSLContext | None) -> socket.socket:
    """A connected non-blocking socket (TLS handshake done), or the OS's / OpenSSL's error."""
    loop = asyncio.get_running_loop()
    if endpoint.uds:
        targets: list[tuple[int, Any]] = [(socket.AF_UNIX, endpoint.uds)]
    else:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        targets = [(family, addr) for family, _, _, _, addr in infos]
    error: OSError | None = None
    for family, addr in targets:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, addr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        break
    else:
        raise error or OSError(f"no address for {host}")
    if family != socket.AF_UNIX:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls is None:
        return sock
    wrapped = tls.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    try:
        while True:
            try:
                wrapped.do_handshake()
                return wrapped
            except ssl.SSLWantReadError:
                await _io_ready(loop, wrapped, read=True)
            except ssl.SSLWantWriteError:
                await _io_ready(loop, wrapped, read=False)
    except BaseException:
        wrapped.close()
        raise


def endpoint_target(endpoint: Endpoint) -> tuple[str, int, ssl.SSLContext | None]:
    url = urlsplit(endpoint.base_url)
    host = url.hostname or "docker"
    tls = endpoint.verify if isinstance(endpoint.verify, ssl.SSLContext) else (
        ssl.create_default_context() if url.scheme == "https" else None)
    return host, url.port or (443 if tls else 80), tls


async def open_line_stream(endpoint: Endpoint, path: str, on_line: Callable[[bytes], None],
                           on_close: Callable[[Exception | None], None], timeout: float,
                           once: bool = False, immediate: bool = False) -> LineStream:
    """Connect and send `GET path`; the returned protocol delivers lines until closed.

    `once`: ask the peer to close after its answer (a one-shot read on its own connection).
    `immediate`: read as bytes arrive (someone awaits the answer), not on the pump's tick."""
    loop = asyncio.get_running_loop()
    host, port, tls = endpoint_target(endpoint)
    close = "Connection: close\r\n" if once else ""
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: berth\r\n"
               f"Accept: application/json\r\n{close}\r\n").encode()
    async with asyncio.timeout(timeout):  # no task per call, unlike wait_for
        sock = await connect_socket(endpoint, host, port, tls)
        pump = StatsPump.of(loop)
        proto = LineStream(request, on_line, on_close)
        transport = _PumpTransport(pump, sock, proto, immediate)
        proto.connection_made(transport)
        try:
            await _send_all(loop, sock, bytes(transport.out))
        except BaseException:
            sock.close()
            raise
    transport.out.clear()
    pump.add(transport)
    return proto
