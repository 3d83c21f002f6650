"""The Engine API over HTTP/1.1 on a unix socket, in front of one SimDaemon (asyncio + h11).

It answers like dockerd 20.10 on the wire: versioned (`/v1.41/...`) and
unversioned paths, the Api-Version / Docker-Experimental / Ostype / Server
headers, JSON error bodies `{"message": ...}` with dockerd's status codes,
newline-delimited JSON streams in chunked encoding (stats, events), the
multiplexed log stream, and `{"message":"page not found"}` for anything else.

One process serves many streams cheaply. Stats streams are pushed: the daemon's
1 Hz tick renders each watched container's sample once and writes the framed
chunk straight to every reader's transport (no task, queue or wake-up per sample),
dropping a sample for a reader whose unsent bytes are over STATS_BUFFER (dockerd's
publisher skips a subscriber that does not keep up, it never queues without bound).
Other streams (events, logs, wait) are coroutines the connection drives. Either
way a read per streaming connection notices the client going away while idle.

`go_down()` / `go_up()` make the node flap: "refuse" closes the listener and
leaves the socket file (connection refused, like a crashed dockerd), "reset"
accepts and closes at once, "hang" accepts and never answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import http
import logging
import math
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import h11
import orjson

from console.sim import samples
from console.sim.daemon import (
    API_VERSION,
    ENGINE_VERSION,
    MIN_API_VERSION,
    NS,
    ApiError,
    NotModified,
    SimDaemon,
    StatsSink,
    _go_json,
    iter_frames,
    parse_filters,
)

log = logging.getLogger(__name__)

MAX_BODY = 4 * 1024 * 1024
STATS_BUFFER = 64 * 1024  # unsent bytes past which a stats reader misses samples (about 20 of them)
SERVER = f"Docker/{ENGINE_VERSION} (linux)"
_VERSIONED = re.compile(r"^/v([0-9]+)\.([0-9]+)(/.*)$")
_MAX_API = tuple(int(x) for x in API_VERSION.split("."))
_MIN_API = tuple(int(x) for x in MIN_API_VERSION.split("."))


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: AsyncIterator[bytes] | None = None  # chunked body instead of `body`
    stats: Callable[[StatsSink], Callable[[], None]] | None = None  # pushed chunked body: subscribe -> unsubscribe
    engine_headers: bool = True  # False for the router's own 404


def json_response(doc: Any, status: int = 200) -> Response:
    return Response(status, _go_json(doc))


def error_response(status: int, message: str) -> Response:
    return Response(status, _go_json({"message": message}))


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    api: tuple[int, int] = (1, 41)  # the API version the request asked for (its path), set by dispatch

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        """httputils.BoolValue(OrDefault): "", 0, no, false, none are false."""
        if name not in self.query:
            return default
        return self.arg(name).strip().lower() not in ("", "0", "no", "false", "none")

    def json(self) -> Any:
        ctype = self.headers.get("content-type", "")
        if ctype and ctype.split(";")[0].strip() != "application/json":
            raise ApiError(400, f"Content-Type specified ({ctype}) must be 'application/json'")
        if not self.body.strip():
            return {}
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, f"invalid character in JSON body: {exc}") from exc


def parse_timestamp(text: str) -> int | None:
    """timetypes.ParseTimestamps on the server: "sec" or "sec.frac" -> ns; "" -> None."""
    if text == "":
        return None
    sec_text, dot, frac = text.partition(".")
    try:
        sec = int(sec_text)
    except ValueError:
        raise ApiError(500, f'strconv.ParseInt: parsing "{sec_text}": invalid syntax') from None
    if not dot:
        return sec * NS
    try:
        nsec = int(frac)
    except ValueError:
        raise ApiError(500, f'strconv.ParseInt: parsing "{frac}": invalid syntax') from None
    return sec * NS + int(nsec * math.pow(10, 9 - len(frac)))


Handler = Callable[[Request, "re.Match[str]"], Awaitable[Response]]


def shape_event(api: tuple[int, int], raw: bytes) -> bytes:
    """One event line in the shape of the API version the client asked for. From 1.52 the
    deprecated top-level `status`, `id` and `from` are gone: readers use Action and Actor.ID."""
    if api < (1, 52):
        return raw
    doc = orjson.loads(raw)
    for key in ("status", "id", "from"):
        doc.pop(key, None)
    return orjson.dumps(doc) + b"\n"


class EngineServer:
    """One node's HTTP endpoint."""

    def __init__(self, daemon: SimDaemon, socket_path: str) -> None:
        self.daemon = daemon
        self.socket_path = socket_path
        self.mode = "up"  # up | refuse | reset | hang
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._up = asyncio.Event()
        self._up.set()
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._route_table()

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        self._server = await asyncio.start_unix_server(self._connection, path=self.socket_path,
                                                       limit=MAX_BODY, backlog=512)
        os.chmod(self.socket_path, 0o660)
        self.mode = "up"
        self._up.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self._up.set()
        self._abort_all()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    async def go_down(self, mode: str = "refuse") -> None:
        if mode not in ("refuse", "reset", "hang"):
            raise ValueError(f"unknown outage mode {mode!r}")
        self.mode = mode
        if mode == "hang":
            self._up.clear()
            return
        if mode == "refuse" and self._server is not None:
            self._server.close()  # the socket file stays behind: connect() is refused
            self._server = None
        self._abort_all()

    async def go_up(self) -> None:
        if self._server is None:
            await self.start()
        self.mode = "up"
        self._up.set()

    def _abort_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    # -- connections -------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode in ("reset", "refuse"):
            writer.transport.abort()
            return
        self._writers.add(writer)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        leftover: list[bytes] = []
        try:
            while True:
                req = await self._read_request(conn, reader, leftover)
                if req is None:
                    break
                if not self._up.is_set():
                    await self._up.wait()  # hung: the request waits (the client times out)
                keep = await self._respond(conn, reader, writer, req, leftover)
                if not keep or conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    break
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    break
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Only at shutdown. Returning (not re-raising) keeps Python 3.11's start_unix_server
            # callback from logging every open stream's cancellation as an error.
            pass
        except h11.RemoteProtocolError as exc:
            with contextlib.suppress(Exception):
                body = _go_json({"message": f"bad request: {exc}"})
                writer.write(conn.send(h11.Response(status_code=400, headers=[
                    ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                    ("Connection", "close")])))
                writer.write(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _read_request(self, conn: h11.Connection, reader: asyncio.StreamReader,
                            leftover: list[bytes]) -> Request | None:
        head: h11.Request | None = None
        chunks: list[bytes] = []
        size = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if leftover:
                    conn.receive_data(b"".join(leftover))
                    leftover.clear()
                    continue
                data = await reader.read(65536)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_BODY:
                    raise h11.RemoteProtocolError("request body too large")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                target = head.target.decode("latin-1")
                parts = urlsplit(target)
                return Request(method=head.method.decode(), path=unquote(parts.path),
                               query=parse_qs(parts.query, keep_blank_values=True),
                               headers={k.decode().lower(): v.decode("latin-1") for k, v in head.headers},
                               body=b"".join(chunks))
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None

    def _headers(self, resp: Response, now: float) -> list[tuple[str, str]]:
        date = email.utils.formatdate(now, usegmt=True)
        if not resp.engine_headers:
            out = [("Content-Type", resp.content_type or "application/json")]
        else:
            out = [("Api-Version", self.daemon.api_version)]
            out += [h for h in resp.headers if h[0] < "Content-Type"]
            if resp.content_type:
                out.append(("Content-Type", resp.content_type))
            out += [("Docker-Experimental", "false"), ("Ostype", "linux")]
            out += [h for h in resp.headers if h[0] > "Content-Type"]
            out.append(("Server", SERVER))
        out.append(("Date", date))
        return out

    async def _respond(self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       req: Request, leftover: list[bytes]) -> bool:
        try:
            resp = await self.dispatch(req)
        except ApiError as exc:
            resp = error_response(exc.status, exc.message)
        except NotModified:
            resp = Response(304, content_type=None)
        except Exception as exc:  # a sim bug answers 500 like dockerd would, and is logged
            log.exception("sim %s: %s %s failed", self.daemon.name, req.method, req.path)
            resp = error_response(500, f"{type(exc).__name__}: {exc}")
        headers = self._headers(resp, time.time())
        if resp.stream is None and resp.stats is None:
            if resp.status not in (204, 304):
                headers.append(("Content-Length", str(len(resp.body))))
            writer.write(conn.send(h11.Response(status_code=resp.status, headers=headers,
                                                reason=_reason(resp.status))))
            if resp.body and req.method != "HEAD":
                writer.write(conn.send(h11.Data(data=resp.body)))
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
            return True
        headers.append(("Transfer-Encoding", "chunked"))
        writer.write(conn.send(h11.Response(status_code=resp.status, headers=headers,
                                                reason=_reason(resp.status))))
        await writer.drain()
        if resp.stats is not None:
            return await self._push(conn, reader, writer, resp.stats, leftover)
        assert resp.stream is not None
        return await self._stream(conn, reader, writer, resp.stream, leftover)

    async def _push(self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    subscribe: Callable[[StatsSink], Callable[[], None]], leftover: list[bytes]) -> bool:
        """A stats stream: the daemon's tick writes the chunks; here we only wait for its end or the client's."""
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        reader_sink = _StatsReader(writer.transport, self._up, ended)
        unsubscribe = subscribe(reader_sink)
        read: asyncio.Future[bytes] | None = None
        try:
            while True:
                read = asyncio.ensure_future(reader.read(65536))
                await asyncio.wait((read, ended), return_when=asyncio.FIRST_COMPLETED)
                if not read.done():
                    break
                data = read.result()
                read = None
                if not data:
                    return False  # the client went away
                leftover.append(data)
            # h11 framed none of the chunks (the tick wrote them), so its state is still SEND_BODY.
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
            return True
        finally:
            unsubscribe()
            if read is not None:
                read.cancel()
                await asyncio.gather(read, return_exceptions=True)

    async def _stream(self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      body: AsyncIterator[bytes], leftover: list[bytes]) -> bool:
        """Send a chunked body until it ends or the client goes away (watched even while idle)."""
        gone = asyncio.Event()

        async def watch() -> None:
            while True:
                data = await reader.read(65536)
                if not data:
                    gone.set()
                    return
                leftover.append(data)

        watcher = asyncio.create_task(watch())
        ended = asyncio.ensure_future(gone.wait())
        iterator = body.__aiter__()
        nxt: asyncio.Future[bytes] | None = None
        try:
            while True:
                nxt = asyncio.ensure_future(iterator.__anext__())
                done, _ = await asyncio.wait({nxt, ended}, return_when=asyncio.FIRST_COMPLETED)
                if nxt not in done:
                    return False  # the client went away
                try:
                    chunk = nxt.result()
                except StopAsyncIteration:
                    break
                finally:
                    if nxt.done():
                        nxt = None
                if not self._up.is_set():
                    await self._up.wait()
                if chunk:
                    writer.write(conn.send(h11.Data(data=chunk)))
                    await writer.drain()
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
            return True
        finally:
            helpers = [t for t in (nxt, watcher, ended) if t is not None]
            for t in helpers:
                t.cancel()
            # The watcher must be gone before the next request reads from the same stream, and a
            # pending __anext__ must be collected (else: "Task exception was never retrieved").
            await asyncio.gather(*helpers, return_exceptions=True)
            with contextlib.suppress(BaseException):
                await iterator.aclose()  # type: ignore[attr-defined]

    # -- routing ---------------------------------------------------------------

    def _route_table(self) -> None:
        cid = r"(?P<id>[^/]+)"
        add = self._routes.append
        add(("GET", re.compile(r"^/_ping$"), self._ping))
        add(("HEAD", re.compile(r"^/_ping$"), self._ping))
        add(("GET", re.compile(r"^/version$"), self._version))
        add(("GET", re.compile(r"^/info$"), self._info))
        add(("GET", re.compile(r"^/events$"), self._events))
        add(("GET", re.compile(r"^/containers/json$"), self._containers))
        add(("POST", re.compile(r"^/containers/create$"), self._create))
        add(("GET", re.compile(rf"^/containers/{cid}/json$"), self._inspect))
        add(("GET", re.compile(rf"^/containers/{cid}/stats$"), self._stats))
        add(("GET", re.compile(rf"^/containers/{cid}/logs$"), self._logs))
        add(("GET", re.compile(rf"^/containers/{cid}/top$"), self._top))
        add(("POST", re.compile(rf"^/containers/{cid}/(?P<action>start|stop|restart|kill|pause|unpause)$"),
             self._action))
        add(("POST", re.compile(rf"^/containers/{cid}/rename$"), self._rename))
        add(("POST", re.compile(rf"^/containers/{cid}/update$"), self._update))
        add(("POST", re.compile(rf"^/containers/{cid}/wait$"), self._wait))
        add(("DELETE", re.compile(rf"^/containers/{cid}$"), self._remove))
        add(("GET", re.compile(r"^/networks$"), self._networks))
        add(("POST", re.compile(r"^/networks/create$"), self._network_create))
        add(("GET", re.compile(rf"^/networks/{cid}$"), self._network_inspect))
        add(("DELETE", re.compile(rf"^/networks/{cid}$"), self._network_remove))
        add(("POST", re.compile(rf"^/networks/{cid}/(?P<action>connect|disconnect)$"), self._network_action))
        add(("GET", re.compile(r"^/images/json$"), self._images))
        add(("GET", re.compile(r"^/images/(?P<name>.+)/json$"), self._image_inspect))
        from console.sim import (
            storage_routes,  # archive, changes, volumes, image save/load (it imports this module)
        )

        self._routes[:0] = storage_routes.routes(self)

    async def dispatch(self, req: Request) -> Response:
        path = req.path
        m = _VERSIONED.match(path)
        major, _, minor = self.daemon.api_version.partition(".")
        newest = (int(major), int(minor))
        req.api = newest  # an unversioned path gets the newest API's shapes, as on dockerd
        if m:
            version = (int(m.group(1)), int(m.group(2)))
            path = m.group(3)
            if version > newest:
                return Response(400, _go_json({"message": f"client version {version[0]}.{version[1]} is too new. "
                                                          f"Maximum supported API version is "
                                                          f"{self.daemon.api_version}"}))
            req.api = version
            if version < _MIN_API:
                text = (f"client version {version[0]}.{version[1]} is too old. Minimum supported API version is "
                        f"{MIN_API_VERSION}, please upgrade your client to a newer version\n")
                return Response(400, text.encode(), "text/plain; charset=utf-8",
                                 headers=[("X-Content-Type-Options", "nosniff")])
        for method, pattern, handler in self._routes:
            if method == req.method and (match := pattern.match(path)):
                return await handler(req, match)
        return Response(404, _go_json({"message": "page not found"}), engine_headers=False)

    # -- system ----------------------------------------------------------------

    async def _ping(self, req: Request, m: re.Match[str]) -> Response:
        cache = [("Cache-Control", "no-cache, no-store, must-revalidate")]
        if req.method == "HEAD":
            return Response(200, b"", "text/plain; charset=utf-8", headers=[*cache, ("Pragma", "no-cache")])
        return Response(200, b"OK", "text/plain; charset=utf-8", headers=[*cache, ("Pragma", "no-cache")])

    async def _version(self, req: Request, m: re.Match[str]) -> Response:
        return json_response(self.daemon.version())

    async def _info(self, req: Request, m: re.Match[str]) -> Response:
        return json_response(self.daemon.info())

    async def _events(self, req: Request, m: re.Match[str]) -> Response:
        since_raw, until_raw = req.arg("since"), req.arg("until")
        since = parse_timestamp(since_raw)
        until = parse_timestamp(until_raw)
        only_past = False
        if until is not None:
            if since is not None and until < since:
                raise ApiError(400, f"`since` time ({since_raw}) cannot be after `until` time ({until_raw})")
            only_past = until < time.time_ns()
        accept = self.daemon.event_filter(parse_filters(req.arg("filters") or None))
        daemon = self.daemon
        # Subscribe and snapshot the ring in one step (no await between): nothing lost, nothing twice.
        sub = None if only_past else daemon.subscribe_events(accept)
        past = daemon.past_events(since, until, accept)

        shape = partial(shape_event, req.api)

        async def body() -> AsyncIterator[bytes]:
            try:
                yield b""  # dockerd flushes the headers before any event
                for raw in past:
                    yield shape(raw)
                if sub is None:
                    return
                deadline = None if until is None else until / NS
                while True:
                    timeout = None if deadline is None else deadline - time.time()
                    if timeout is not None and timeout <= 0:
                        return
                    try:
                        item = await asyncio.wait_for(sub.queue.get(), timeout)
                    except TimeoutError:
                        return
                    if item is None:
                        return
                    yield shape(item)
            finally:
                if sub is not None:
                    daemon.unsubscribe_events(sub)

        return Response(200, content_type="application/json", stream=body())

    # -- containers --------------------------------------------------------------

    async def _containers(self, req: Request, m: re.Match[str]) -> Response:
        limit_text = req.arg("limit", "-1") or "-1"
        try:
            limit = int(limit_text)
        except ValueError:
            raise ApiError(400, f'strconv.Atoi: parsing "{limit_text}": invalid syntax') from None
        items = self.daemon.list_containers(req.flag("all"), parse_filters(req.arg("filters") or None), limit)
        return json_response(items)

    async def _create(self, req: Request, m: re.Match[str]) -> Response:
        body = req.json()
        if not isinstance(body, dict):
            raise ApiError(400, "json: cannot unmarshal into Go value of type container.Config")
        name = req.arg("name") if "name" in req.query else None
        return json_response(self.daemon.create(name, body), 201)

    async def _inspect(self, req: Request, m: re.Match[str]) -> Response:
        return json_response(self.daemon.inspect(m["id"]))

    async def _top(self, req: Request, m: re.Match[str]) -> Response:
        return json_response(self.daemon.top(m["id"], req.arg("ps_args")))

    async def _action(self, req: Request, m: re.Match[str]) -> Response:
        d, ref, action = self.daemon, m["id"], m["action"]
        timeout = None
        if req.arg("t"):
            try:
                timeout = float(int(req.arg("t")))
            except ValueError:
                raise ApiError(400, f'strconv.Atoi: parsing "{req.arg("t")}": invalid syntax') from None
        if action == "start":
            await d.start_container(ref)
        elif action == "stop":
            await d.stop_container(ref, timeout)
        elif action == "restart":
            await d.restart_container(ref, timeout)
        elif action == "kill":
            await d.kill_container(ref, req.arg("signal"))
        elif action == "pause":
            await d.pause_container(ref)
        else:
            await d.unpause_container(ref)
        return Response(204, content_type=None)

    async def _rename(self, req: Request, m: re.Match[str]) -> Response:
        self.daemon.rename(m["id"], req.arg("name"))
        return Response(204, content_type=None)

    async def _update(self, req: Request, m: re.Match[str]) -> Response:
        body = req.json()
        if not isinstance(body, dict):
            raise ApiError(400, "json: cannot unmarshal into Go value of type container.UpdateConfig")
        return json_response(self.daemon.update(m["id"], body))

    async def _wait(self, req: Request, m: re.Match[str]) -> Response:
        self.daemon.lookup(m["id"])  # 404 before the 200 headers go out
        condition = req.arg("condition") or "not-running"
        waiting = self.daemon.wait_container(m["id"], condition)

        async def body() -> AsyncIterator[bytes]:
            yield b""  # dockerd sends the headers at once, the body when the container stops
            yield _go_json(await waiting)

        return Response(200, content_type="application/json", stream=body())

    async def _remove(self, req: Request, m: re.Match[str]) -> Response:
        await self.daemon.remove(m["id"], req.flag("force"))
        return Response(204, content_type=None)

    async def _logs(self, req: Request, m: re.Match[str]) -> Response:
        stdout, stderr = req.flag("stdout"), req.flag("stderr")
        if not stdout and not stderr:
            raise ApiError(400, "Bad parameters: you must choose at least one stream")
        d = self.daemon
        c = d.lookup(m["id"])
        since = parse_timestamp(req.arg("since")) or 0
        until = parse_timestamp(req.arg("until")) or 0
        tail_text = req.arg("tail", "all") or "all"
        tail = None if tail_text == "all" else int(tail_text) if tail_text.isdigit() else None
        now = time.time_ns()
        records = d.log_records(c, since, until, tail, now)
        follow = req.flag("follow")
        timestamps = req.flag("timestamps")

        async def body() -> AsyncIterator[bytes]:
            yield b""
            last = now
            for frame in iter_frames(records, timestamps, c.tty, (stdout, stderr)):
                yield frame
            if follow:
                async for rec in d.follow_logs(c, last, until):
                    for frame in iter_frames([rec], timestamps, c.tty, (stdout, stderr)):
                        yield frame

        return Response(200, content_type=None, stream=body())

    async def _stats(self, req: Request, m: re.Match[str]) -> Response:
        d = self.daemon
        c = d.lookup(m["id"])
        stream = req.flag("stream", default=True)
        if not stream and c.state not in ("running", "paused"):
            return json_response(d.empty_stats(c))
        if not stream:
            # dockerd's collector publishes in rounds a second apart (collect, then sleep; this
            # node's is always busy): a one-shot takes the next round's sample, and stream=false
            # primes precpu with one round and answers with the next (about 1-2 s)
            loop = asyncio.get_running_loop()
            sink = _Next(loop.create_future()) if req.flag("one-shot") else _Settle(loop.create_future())
            d.subscribe_stats(c, sink)
            try:
                body = await sink.done
            finally:
                d.unsubscribe_stats(c, sink)
            if body is None:
                raise ApiError(404, f"No such container: {m['id']}")
            return Response(200, body)

        def subscribe(sink: StatsSink) -> Callable[[], None]:
            d.subscribe_stats(c, sink)
            return lambda: d.unsubscribe_stats(c, sink)

        return Response(200, content_type=None, stats=subscribe)

    # -- networks ----------------------------------------------------------------

    async def _networks(self, req: Request, m: re.Match[str]) -> Response:
        return json_response(self.daemon.list_networks(parse_filters(req.arg("filters") or None)))

    async def _network_inspect(self, req: Request, m: re.Match[str]) -> Response:
        return json_response(self.daemon.inspect_network(m["id"]))

    async def _network_create(self, req: Request, m: re.Match[str]) -> Response:
        body = req.json()
        if not isinstance(body, dict):
            raise ApiError(400, "json: cannot unmarshal into Go value of type types.NetworkCreateRequest")
        return json_response(self.daemon.create_network(body), 201)

    async def _network_remove(self, req: Request, m: re.Match[str]) -> Response:
        self.daemon.remove_network(m["id"])
        return Response(204, content_type=None)

    async def _network_action(self, req: Request, m: re.Match[str]) -> Response:
        body = req.json()
        if not isinstance(body, dict):
            raise ApiError(400, "json: cannot unmarshal into Go value of type types.NetworkConnect")
        if m["action"] == "connect":
            self.daemon.connect(m["id"], body)
        else:
            self.daemon.disconnect(m["id"], body)
        return Response(200, b"", content_type=None)

    # -- images ------------------------------------------------------------------

    async def _images(self, req: Request, m: re.Match[str]) -> Response:
        return json_response([
            {"Containers": -1, "Created": img.created, "Id": img.id, "Labels": None, "ParentId": "",
             "RepoDigests": None, "RepoTags": [img.ref], "SharedSize": -1, "Size": img.size,
             "VirtualSize": img.size}
            for img in sorted(self.daemon.images.values(), key=lambda i: i.ref)])

    async def _image_inspect(self, req: Request, m: re.Match[str]) -> Response:
        name = m["name"]
        full = name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"
        img = self.daemon.images.get(full) or next(
            (i for i in self.daemon.images.values() if i.id == name or i.id[7:].startswith(name)), None)
        if img is None:
            raise ApiError(404, f"No such image: {full}")
        config = {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
                  "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False,
                  "Env": list(img.env), "Cmd": list(img.cmd) or None, "Image": "", "Volumes": None,
                  "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None}
        return json_response({
            "Id": img.id, "RepoTags": [img.ref], "RepoDigests": [], "Parent": "", "Comment": "",
            "Created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(img.created)), "Container": "",
            "ContainerConfig": config, "DockerVersion": ENGINE_VERSION, "Author": "", "Config": config,
            "Architecture": "amd64", "Os": "linux", "Size": img.size, "VirtualSize": img.size,
            "GraphDriver": {"Data": None, "Name": self.daemon.storage.driver},
            "RootFS": {"Type": "layers", "Layers": [f"sha256:{img.id[7:]}"]},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"}})


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class _StatsReader:
    """One `stats?stream=1` reader, as the daemon's tick sees it: each sample goes out as one chunk
    spliced with this reader's own previous sample (its precpu_stats)."""

    __slots__ = ("transport", "up", "ended", "pre", "dropped")

    def __init__(self, transport: asyncio.WriteTransport, up: asyncio.Event, ended: asyncio.Future[None]) -> None:
        self.transport = transport
        self.up = up
        self.ended = ended
        self.pre: samples.Sample | None = None
        self.dropped = 0

    def offer(self, sample: samples.Sample) -> None:
        t = self.transport
        if t.is_closing() or not self.up.is_set():  # gone (its connection unsubscribes), or the node hangs
            return
        if t.get_write_buffer_size() > STATS_BUFFER:
            self.dropped += 1  # a slow reader misses samples; its next one still follows its own last
            return
        t.write(sample.chunk(self.pre))
        self.pre = sample

    def end(self) -> None:
        if not self.ended.done():
            self.ended.set_result(None)


class _Next:
    """`stats?stream=false&one-shot=true`: the next round's sample, without precpu; None if the container went."""

    __slots__ = ("done",)

    def __init__(self, done: asyncio.Future[bytes | None]) -> None:
        self.done = done

    def offer(self, sample: samples.Sample) -> None:
        if not self.done.done():
            self.done.set_result(sample.json(None))

    def end(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class _Settle:
    """`stats?stream=false`: the second sample, with the first as its precpu_stats; None if the container went."""

    __slots__ = ("done", "pre")

    def __init__(self, done: asyncio.Future[bytes | None]) -> None:
        self.done = done
        self.pre: samples.Sample | None = None

    def offer(self, sample: samples.Sample) -> None:
        if self.done.done():
            return
        if self.pre is None:
            self.pre = sample
        else:
            self.done.set_result(sample.json(self.pre))

    def end(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


__all__ = ["EngineServer", "Request", "Response", "parse_timestamp"]
