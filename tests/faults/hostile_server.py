"""A fake Docker Engine on loopback that answers like dockerd 20.10, until told to misbehave.

`HostileEngine(scenario)` serves the handful of endpoints Berth's poller uses
(`/_ping`, `/info`, `/version`, `/containers/json`, `/networks`, `/events`,
`/containers/{id}/json`, `/containers/{id}/stats`) with one running container
whose stats stream yields a sample every half second.  A scenario (see
SCENARIOS) replaces exactly one endpoint's answer with something a broken
daemon, proxy or attacker could send; `"ok"` misbehaves nowhere.

It speaks raw HTTP/1.1 on asyncio streams, so it can send what no framework
would: a lying Content-Length, endless chunked bodies, half a JSON line, one
byte per second, a connection cut mid-chunk.  Every body it streams is built
from one constant chunk, so its own memory stays flat however much it sends.

Tests run the servers with `HostileProcess({node: scenario, ...})`, in a child
process, so the fakes' CPU and memory stay out of Berth's measurements; a
test switches a node's behaviour (e.g. back to "ok", to watch recovery) with
`set_scenario`, which calls the fake's own `/_hostile/scenario` endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import os
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import orjson

API_VERSION = "1.41"
MiB = 1024 * 1024
HUGE = 200 * MiB  # what the "huge" scenarios declare or stream
CHUNK = 64 * 1024
SAMPLE_EVERY = 0.5


def container_id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


# scenario -> what it does, for test ids and reports
SCENARIOS: dict[str, str] = {
    "ok": "a well-behaved daemon",
    "ping-no-api-version": "/_ping answers 200 OK without an API-Version header",
    "ping-old-api": "/_ping says API-Version 1.30 (Docker 17.06)",
    "ping-500-json": "/_ping answers 500 with a JSON message",
    "ping-redirect": "/_ping answers 301 to another host",
    "ping-huge-streamed": "/_ping streams an endless chunked body",
    "ping-trickle": "/_ping sends its body one byte per second",
    "list-invalid-json": "/containers/json answers 200 with broken JSON",
    "list-html": "/containers/json answers 200 text/html (a proxy's error page)",
    "list-wrong-shape": "/containers/json answers a JSON object instead of an array",
    "list-500-json": "/containers/json answers 500 with a JSON message",
    "list-502-text": "/containers/json answers 502 with a plain-text body",
    "list-503-empty": "/containers/json answers 503 with no body",
    "list-redirect": "/containers/json answers 302 to another host",
    "list-huge-declared": "/containers/json declares a 200 MiB Content-Length",
    "list-huge-streamed": "/containers/json streams 200 MiB chunked",
    "list-trickle": "/containers/json sends its body one byte per second",
    "list-reset": "/containers/json resets the connection (TCP RST) instead of answering",
    "info-garbage-numbers": "/info says NCPU is 'lots' and MemTotal is a list",
    "events-endless-line": "/events streams bytes forever without a newline",
    "events-not-json": "/events sends a line that is not JSON",
    "events-trickle": "/events sends an event one byte per second",
    "events-truncated": "/events ends cleanly in the middle of a JSON line",
    "events-garbage": "/events sends unknown types, garbage fields and non-object lines, then a real rename",
    "stats-endless-line": "the stats stream sends bytes forever without a newline",
    "stats-trickle": "the stats stream sends one byte per second",
    "stats-truncated": "every stats stream ends cleanly in the middle of its first JSON line",
    "stats-cut": "every stats stream's connection is cut in the middle of its first chunk",
    "stats-flapping": "the stats stream sends two good samples, then is cut mid-chunk; again and again",
    "stats-not-stats": "the stats stream sends JSON that is not a stats sample",
    "stats-500-json": "the stats endpoint answers 500 with a JSON message",
}

_REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 404: "Not Found", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable"}


class _Gone(Exception):
    """The client went away; stop serving this connection."""


class HostileEngine:
    """One fake node on 127.0.0.1:<free port>, served on the running event loop."""

    def __init__(self, scenario: str = "ok", *, name: str = "hostile") -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}")
        self.scenario = scenario
        self.name = name
        self.container = container_id(name)
        self.port = 0
        self.requests: Counter[str] = Counter()  # route -> count
        self.bytes_streamed = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=64 * 1024)
        self.port = self._server.sockets[0].getsockname()[1]

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    # -- HTTP ------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    first = await reader.readexactly(1)
                    if first == b"\x16":  # a TLS handshake: answer like Go's net/http does, then hang up
                        await self._write(writer, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                        return
                    head = first + await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                if headers.get("content-length", "0") != "0":
                    await reader.readexactly(int(headers["content-length"]))
                parts = urlsplit(target)
                path = parts.path
                if path.startswith("/v1."):
                    path = "/" + path.split("/", 2)[2]
                keep = await self._route(method, path, parse_qs(parts.query), reader, writer)
                if not keep:
                    return
        except (_Gone, ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:  # the server is stopping: end this connection quietly
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _route(self, method: str, path: str, query: dict[str, list[str]],
                     reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if path == "/_hostile/scenario":  # the test switches behaviour (e.g. back to "ok")
            wanted = (query.get("name") or [""])[0]
            if wanted not in SCENARIOS:
                return await self._json(writer, 400, {"message": f"unknown scenario {wanted!r}"})
            self.scenario = wanted
            return await self._json(writer, 200, {"scenario": wanted})
        if path == "/_hostile/stats":
            return await self._json(writer, 200, {"requests": dict(self.requests),
                                                  "bytes_streamed": self.bytes_streamed})
        cid = self.container
        routes: dict[str, Callable[[], Awaitable[bool]]] = {
            "/_ping": lambda: self._ping(writer),
            "/info": lambda: self._info(writer),
            "/version": lambda: self._json(writer, 200, self._version_doc()),
            "/containers/json": lambda: self._list(writer),
            "/networks": lambda: self._json(writer, 200, []),
            "/events": lambda: self._events(reader, writer),
            f"/containers/{cid}/json": lambda: self._json(writer, 200, self._inspect_doc()),
            f"/containers/{cid}/stats": lambda: self._stats(reader, writer),
        }
        handler = routes.get(path)
        self.requests[path if handler else "other"] += 1
        if handler is None:
            return await self._json(writer, 404, {"message": f"page not found: {method} {path}"})
        return await handler()

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        try:
            await writer.drain()
        except ConnectionError as exc:
            raise _Gone() from exc
        if writer.is_closing():
            raise _Gone()

    def _head(self, status: int, headers: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Whatever')}", "Server: Docker/20.10.24 (linux)",
                 *(f"{k}: {v}" for k, v in headers.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _send(self, writer: asyncio.StreamWriter, status: int, body: bytes,
                    content_type: str | None = "application/json", extra: dict[str, str] | None = None) -> bool:
        headers = {"Api-Version": API_VERSION, "Content-Length": str(len(body))}
        if content_type:
            headers["Content-Type"] = content_type
        headers.update(extra or {})
        await self._write(writer, self._head(status, headers) + body)
        return True

    async def _json(self, writer: asyncio.StreamWriter, status: int, doc: Any) -> bool:
        return await self._send(writer, status, orjson.dumps(doc) + b"\n")

    async def _start_chunked(self, writer: asyncio.StreamWriter, status: int = 200,
                             content_type: str = "application/json", extra: dict[str, str] | None = None) -> None:
        headers = {"Api-Version": API_VERSION, "Content-Type": content_type, "Transfer-Encoding": "chunked",
                   **(extra or {})}
        await self._write(writer, self._head(status, headers))

    async def _chunk(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        self.bytes_streamed += len(data)
        await self._write(writer, b"%x\r\n%s\r\n" % (len(data), data))

    async def _end_chunked(self, writer: asyncio.StreamWriter) -> bool:
        await self._write(writer, b"0\r\n\r\n")
        return True

    async def _endless(self, writer: asyncio.StreamWriter, total: int = HUGE, filler: bytes = b"x") -> bool:
        """Stream `total` bytes without a single newline (or until the client hangs up)."""
        block = filler * (CHUNK // len(filler))
        sent = 0
        while sent < total:
            await self._chunk(writer, block)
            sent += len(block)
        return await self._end_chunked(writer)

    async def _trickle(self, writer: asyncio.StreamWriter, body: bytes, every: float = 1.0) -> bool:
        """Send a body one byte at a time (as chunks, so nothing buffers it)."""
        for i in range(len(body)):
            await self._chunk(writer, body[i:i + 1])
            await asyncio.sleep(every)
        return await self._end_chunked(writer)

    async def _wait_gone(self, reader: asyncio.StreamReader) -> None:
        """Idle until the client closes its end (what dockerd's idle /events does)."""
        while await reader.read(4096):
            pass

    # -- documents -------------------------------------------------------------

    def _info_doc(self) -> dict[str, Any]:
        return {"ID": self.name, "Name": self.name, "NCPU": 2, "MemTotal": 4 * 1024 * MiB,
                "ServerVersion": "20.10.24", "KernelVersion": "6.1.0", "OperatingSystem": "Hostile Linux",
                "CgroupVersion": "2", "Containers": 1, "ContainersRunning": 1,
                "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())}

    def _version_doc(self) -> dict[str, Any]:
        return {"Version": "20.10.24", "ApiVersion": API_VERSION, "MinAPIVersion": "1.12", "Os": "linux"}

    def _list_doc(self) -> list[dict[str, Any]]:
        return [{"Id": self.container, "Names": [f"/{self.name}-app"], "Image": "berth/busybox:test",
                 "Created": 1_700_000_000, "State": "running", "Status": "Up 1 hour",
                 "Labels": {"tenant": "hostile"}}]

    def _inspect_doc(self) -> dict[str, Any]:
        return {"Id": self.container, "Name": f"/{self.name}-app", "RestartCount": 0,
                "State": {"Status": "running", "Running": True, "StartedAt": "2024-01-01T00:00:00.5Z",
                          "ExitCode": 0, "OOMKilled": False},
                "HostConfig": {"NanoCpus": 0, "Memory": 256 * MiB}}

    def _stats_doc(self, n: int) -> bytes:
        doc = {"read": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "cpu_stats": {"cpu_usage": {"total_usage": 50_000_000 * n}, "system_cpu_usage": 10**12 + 10**9 * n,
                             "online_cpus": 2},
               "precpu_stats": {"cpu_usage": {"total_usage": 0}},
               "memory_stats": {"usage": 20 * MiB, "limit": 256 * MiB, "stats": {"inactive_file": 4 * MiB}}}
        return orjson.dumps(doc) + b"\n"

    # -- endpoints -------------------------------------------------------------

    async def _ping(self, writer: asyncio.StreamWriter) -> bool:
        s = self.scenario
        if s == "ping-no-api-version":
            await self._write(writer, self._head(200, {"Content-Type": "text/plain", "Content-Length": "2"}) + b"OK")
            return True
        if s == "ping-old-api":
            await self._write(writer, self._head(200, {"Api-Version": "1.30", "Content-Type": "text/plain",
                                                       "Content-Length": "2"}) + b"OK")
            return True
        if s == "ping-500-json":
            return await self._json(writer, 500, {"message": "daemon is shutting down"})
        if s == "ping-redirect":
            return await self._send(writer, 301, b"", None, {"Location": "http://attacker.invalid/_ping"})
        if s == "ping-huge-streamed":
            await self._start_chunked(writer, content_type="text/plain")
            return await self._endless(writer)
        if s == "ping-trickle":
            await self._start_chunked(writer, content_type="text/plain")
            return await self._trickle(writer, b"OK" * 50)
        return await self._send(writer, 200, b"OK", "text/plain")

    async def _info(self, writer: asyncio.StreamWriter) -> bool:
        doc = self._info_doc()
        if self.scenario == "info-garbage-numbers":
            doc["NCPU"], doc["MemTotal"] = "lots", [1]
        return await self._json(writer, 200, doc)

    async def _list(self, writer: asyncio.StreamWriter) -> bool:
        s = self.scenario
        if s == "list-invalid-json":
            return await self._send(writer, 200, b'[{"Id": "abc", "Names": ["/x"')
        if s == "list-html":
            return await self._send(writer, 200, b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                                    "text/html; charset=utf-8")
        if s == "list-wrong-shape":
            return await self._json(writer, 200, {"containers": self._list_doc()})
        if s == "list-500-json":
            return await self._json(writer, 500, {"message": "containerd: connection refused"})
        if s == "list-502-text":
            return await self._send(writer, 502, b"upstream connect error or disconnect/reset before headers",
                                    "text/plain")
        if s == "list-503-empty":
            return await self._send(writer, 503, b"", None)
        if s == "list-redirect":
            return await self._send(writer, 302, b"", None, {"Location": "http://attacker.invalid/containers/json"})
        if s == "list-huge-declared":
            await self._write(writer, self._head(200, {"Api-Version": API_VERSION, "Content-Type": "application/json",
                                                       "Content-Length": str(HUGE)}))
            await self._write(writer, b"[" + b" " * CHUNK)
            await asyncio.sleep(30)  # the rest never comes; the client must not wait for it
            return False
        if s == "list-huge-streamed":
            await self._start_chunked(writer)
            await self._chunk(writer, b"[")
            return await self._endless(writer, filler=b'{"Id": "x"},')
        if s == "list-reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
            writer.transport.abort()
            raise _Gone()
        if s == "list-trickle":
            await self._start_chunked(writer)
            return await self._trickle(writer, orjson.dumps(self._list_doc()))
        return await self._json(writer, 200, self._list_doc())

    async def _events(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        s = self.scenario
        await self._start_chunked(writer)
        if s == "events-endless-line":
            return await self._endless(writer)
        if s == "events-trickle":
            return await self._trickle(writer, self._garbage_events()[-1] + b"\n")
        if s == "events-truncated":
            line = self._garbage_events()[-1]
            await self._chunk(writer, line[: len(line) // 2])
            await self._end_chunked(writer)
            return False
        if s == "events-not-json":
            await self._chunk(writer, b"<html>this is not an event</html>\n")
        elif s == "events-garbage":
            for line in self._garbage_events():
                await self._chunk(writer, line + b"\n")
        await self._wait_gone(reader)
        return False

    def _garbage_events(self) -> list[bytes]:
        cid, now = self.container, time.time_ns()
        junk: list[Any] = [
            [1, 2, 3], "a string", 42, None, {}, {"Type": None},
            {"Type": "plugin", "Action": "enable", "Actor": {"ID": "p"}, "timeNano": now},
            {"Type": "container", "Action": "teleport", "Actor": {"ID": cid}, "timeNano": now},
            {"Type": "container", "Action": "start", "Actor": "not an object", "id": 12345},
            {"Type": "container", "Action": "start", "Actor": {"ID": ["a", "list"]}},
            {"Type": "container", "Action": "die", "Actor": {"ID": cid, "Attributes": "nope"}},
            {"Type": "container", "Action": {"nested": True}, "Actor": {"ID": cid, "Attributes": {}}},
            {"Type": "container", "Action": "rename", "Actor": {"ID": cid, "Attributes": {"name": 7}},
             "timeNano": "yesterday"},
            {"Type": "container", "status": "health_status", "Actor": {"ID": cid, "Attributes": {}}},
            {"Type": "container", "Action": "update", "from": {"weird": [None]}, "Actor":
                {"ID": "f" * 64 + "-unknown", "Attributes": {"name": "ghost", "image": ["x"], "tenant": 1}}},
            {"Type": "container", "Action": "destroy", "Actor": {"ID": "0" * 64}},
        ]
        real = {"Type": "container", "Action": "rename", "status": "rename", "id": cid,
                "Actor": {"ID": cid, "Attributes": {"name": "renamed-by-event", "oldName": f"/{self.name}-app"}},
                "scope": "local", "time": now // 10**9, "timeNano": now}
        return [orjson.dumps(j) for j in junk] + [orjson.dumps(real)]

    async def _stats(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        s = self.scenario
        if s == "stats-500-json":
            return await self._json(writer, 500, {"message": "cgroup stats: no such file or directory"})
        await self._start_chunked(writer)
        if s == "stats-endless-line":
            return await self._endless(writer)
        if s == "stats-trickle":
            return await self._trickle(writer, self._stats_doc(1))
        if s == "stats-not-stats":
            while True:
                await self._chunk(writer, b'{"cpu_stats": "busy", "memory_stats": []}\n')
                await asyncio.sleep(SAMPLE_EVERY)
        if s in ("stats-truncated", "stats-cut", "stats-flapping"):
            if s == "stats-flapping":
                for n in (1, 2):
                    await self._chunk(writer, self._stats_doc(n))
                    await asyncio.sleep(SAMPLE_EVERY)
            half = self._stats_doc(3)
            if s == "stats-truncated":
                await self._chunk(writer, half[: len(half) // 2])
                await self._end_chunked(writer)
                return False
            # announce a chunk, send half of it, hang up
            await self._write(writer, b"%x\r\n%s" % (len(half), half[: len(half) // 2]))
            writer.transport.abort()
            raise _Gone()
        n = 0
        while True:
            n += 1
            await self._chunk(writer, self._stats_doc(n))
            await asyncio.sleep(SAMPLE_EVERY)


# -- running servers in a child process ---------------------------------------
#
# Tests run the servers in a child process: its CPU and memory stay out of the
# measurements of Berth (RSS, samples per second), and no GIL is shared.


class HostileProcess:
    """Hostile nodes (name -> scenario) served by one child process; a context manager."""

    def __init__(self, nodes: dict[str, str]) -> None:
        unknown = sorted(set(nodes.values()) - set(SCENARIOS))
        if unknown:
            raise ValueError(f"unknown scenarios {unknown}")
        self.nodes = dict(nodes)
        self.ports: dict[str, int] = {}
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Self:
        args = [sys.executable, __file__, *(f"{n}={s}" for n, s in self.nodes.items())]
        # stdin is the child's lifeline: it exits when the pipe closes, even if the test process dies.
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        deadline = time.monotonic() + 20
        while len(self.ports) < len(self.nodes):
            line = self._proc.stdout.readline()
            if not line or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"hostile servers did not start (got {self.ports})")
            name, port = line.split()
            self.ports[name] = int(port)
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stdout:
            proc.stdout.close()

    def url(self, name: str) -> str:
        return f"tcp://127.0.0.1:{self.ports[name]}"

    def _call(self, name: str, path: str) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.ports[name], timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            doc: dict[str, Any] = orjson.loads(resp.read())
            if resp.status != 200:
                raise RuntimeError(f"{name}: {path}: {resp.status} {doc}")
            return doc
        finally:
            conn.close()

    def set_scenario(self, name: str, scenario: str) -> None:
        self._call(name, f"/_hostile/scenario?name={scenario}")

    def stats(self, name: str) -> dict[str, Any]:
        return self._call(name, "/_hostile/stats")


async def _serve_forever(nodes: list[tuple[str, str]]) -> None:
    engines = [HostileEngine(scenario, name=name) for name, scenario in nodes]
    for engine in engines:
        await engine.start()
        print(engine.name, engine.port, flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes the pipe (or dies)
    for engine in engines:
        engine.close()


if __name__ == "__main__":
    pairs = [tuple(arg.split("=", 1)) for arg in sys.argv[1:]]
    try:
        asyncio.run(_serve_forever([(n, s) for n, s in pairs]))
    except KeyboardInterrupt:
        pass
    os._exit(0)  # do not wait for connection handlers still streaming
