"""The keep-alive pool (console/engine/keepalive.py) against small HTTP/1.1 servers of our own on a
unix socket: answers by length and chunked at any split, reuse, a peer closing idle connections,
time-outs, limits, and the typed errors the client makes of them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import pytest

from console.config import parse_inventory
from console.engine.client import EngineClient
from console.engine.errors import NodeTimeout, NodeUnreachable, NotFound, ProtocolError
from console.engine.keepalive import MAX_BODY, KeepAlivePool
from console.engine.transport import Endpoint

Answer = Callable[[str], Awaitable[bytes | None]]  # request path -> raw response bytes (None: hang up)


class Server:
    """Reads requests one after another on each connection and writes what `answer` returns."""

    def __init__(self, answer: Answer, close_after: int = 0, step: int = 0) -> None:
        self.answer = answer
        self.close_after = close_after  # hang up after this many answers on a connection (0: never)
        self.step = step  # write the response this many bytes at a time (0: at once)
        self.connections = 0
        self.requests: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                path = head.split(b" ", 2)[1].decode()
                self.requests.append(path)
                raw = await self.answer(path)
                if raw is None:
                    return
                if self.step:
                    for i in range(0, len(raw), self.step):
                        writer.write(raw[i:i + self.step])
                        await writer.drain()
                else:
                    writer.write(raw)
                    await writer.drain()
                served += 1
                if self.close_after and served >= self.close_after:
                    return
        finally:
            writer.close()


def by_length(doc: object, status: str = "200 OK") -> bytes:
    body = orjson.dumps(doc) + b"\n"
    return b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        status.encode(), len(body), body)


def chunked(doc: object) -> bytes:
    body = orjson.dumps(doc) + b"\n"
    half = len(body) // 2
    parts = [body[:half], body[half:]]
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n")


async def serving(tmp_path: Path, server: Server) -> tuple[asyncio.Server, Endpoint]:
    path = str(tmp_path / "d.sock")
    srv = await asyncio.start_unix_server(server.handle, path)
    return srv, Endpoint(base_url="http://docker", uds=path)


def client_for(endpoint: Endpoint, timeout: float = 5.0) -> EngineClient:
    inv = parse_inventory(f'[[node]]\nname = "n"\nurl = "unix://{endpoint.uds}"\ntimeout = {timeout}\n')
    return EngineClient(inv.nodes[0])


@pytest.mark.parametrize("step", [0, 1, 7])
@pytest.mark.parametrize("framing", [by_length, chunked])
async def test_many_requests_ride_on_few_connections_whatever_the_framing(
        tmp_path: Path, framing: Callable[[object], bytes], step: int) -> None:
    async def answer(path: str) -> bytes:
        return framing({"path": path, "pad": "x" * 300})

    server = Server(answer, step=step)
    srv, endpoint = await serving(tmp_path, server)
    async with srv:
        pool = KeepAlivePool(endpoint, timeout=10.0, size=4)
        paths = [f"/containers/c{i}/json" for i in range(40)]
        answers = await asyncio.gather(*(pool.get(p) for p in paths))
        pool.close()
    assert [orjson.loads(body)["path"] for _, body in answers] == paths
    assert all(status == 200 for status, _ in answers)
    assert server.connections <= 4 and pool.connections_made <= 4
    assert sorted(server.requests) == sorted(paths)


async def test_a_connection_the_peer_closed_while_idle_is_replaced_and_the_request_resent(tmp_path: Path) -> None:
    async def answer(path: str) -> bytes:
        return by_length({"path": path})

    server = Server(answer, close_after=1)  # the peer closes every connection after one answer
    srv, endpoint = await serving(tmp_path, server)
    async with srv:
        pool = KeepAlivePool(endpoint, timeout=5.0, size=1)
        got = []
        for i in range(5):
            _, body = await pool.get(f"/p{i}")
            got.append(orjson.loads(body)["path"])
            await asyncio.sleep(0.05)  # let the close land, or not: both ways must work
        pool.close()
    assert got == [f"/p{i}" for i in range(5)]
    assert server.connections == 5


async def test_a_request_that_is_never_answered_times_out_and_others_still_get_through(tmp_path: Path) -> None:
    hang = asyncio.Event()

    async def answer(path: str) -> bytes | None:
        if path == "/hang":
            await hang.wait()
            return None
        return by_length({"path": path})

    srv, endpoint = await serving(tmp_path, Server(answer))
    async with srv:
        pool = KeepAlivePool(endpoint, timeout=0.5, size=2)
        with pytest.raises(TimeoutError):
            await pool.get("/hang")
        _, body = await pool.get("/fine")
        assert orjson.loads(body) == {"path": "/fine"}
        pool.close()
        hang.set()


async def test_limits_and_garbage_end_the_request_with_a_reason(tmp_path: Path) -> None:
    async def answer(path: str) -> bytes:
        if path == "/huge":
            return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1)
        if path == "/endless":
            block = b"x" * 65536
            return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + b"%x\r\n%s\r\n" % (len(block), block) * (MAX_BODY // len(block) + 2))
        return b"SSH-2.0-OpenSSH_9.2\r\n\r\n"

    srv, endpoint = await serving(tmp_path, Server(answer))
    async with srv:
        pool = KeepAlivePool(endpoint, timeout=10.0, size=2)
        for path, reason in [("/huge", "exceeds the 4194304-byte limit"), ("/endless", "exceeds 4194304 bytes"),
                             ("/ssh", "not an HTTP response")]:
            with pytest.raises(Exception, match=reason):
                await pool.get(path)
        pool.close()


async def test_the_client_makes_typed_errors_of_pool_failures(tmp_path: Path) -> None:
    async def answer(path: str) -> bytes:
        if path.endswith("/gone/json"):
            return by_length({"message": "No such container: gone"}, "404 Not Found")
        if path.endswith("/html/json"):
            body = b"<html></html>"
            return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        return by_length({"Id": "abc"})

    srv, endpoint = await serving(tmp_path, Server(answer))
    async with srv:
        client = client_for(endpoint)
        assert await client.inspect_lean("abc") == {"Id": "abc"}
        with pytest.raises(NotFound, match="No such container: gone"):
            await client.inspect_lean("gone")
        with pytest.raises(ProtocolError, match=r"^n: GET /containers/html/json: invalid JSON"):
            await client.inspect_lean("html")
        await client.aclose()
    # the daemon is gone now: its socket file is removed with the server
    client = client_for(endpoint)
    with pytest.raises(NodeUnreachable):
        await client.inspect_lean("abc")
    await client.aclose()


async def test_a_frozen_node_is_a_timeout_naming_the_node(tmp_path: Path) -> None:
    async def answer(path: str) -> bytes | None:
        await asyncio.sleep(30)
        return None

    srv, endpoint = await serving(tmp_path, Server(answer))
    async with srv:
        client = client_for(endpoint, timeout=0.5)
        with pytest.raises(NodeTimeout, match=r"^n: GET /containers/abc/json: no complete answer within 0.5s"):
            await client.inspect_lean("abc")
        await client.aclose()
