"""The lean stats reader (console/engine/rawstream.py) against a small HTTP server of our own on a
unix socket: chunk framing split at every byte, whole answers, errors, and the pump's batching."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import pytest

from console.config import parse_inventory
from console.engine.client import EngineClient
from console.engine.errors import NotFound, ProtocolError
from console.engine.rawstream import HOT_LINE, MAX_LINE, StatsPump, StreamEnded, StreamError, open_line_stream
from console.engine.transport import Endpoint

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(tmp_path: Path, handler: Handler) -> tuple[asyncio.Server, Endpoint]:
    path = str(tmp_path / "d.sock")

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_unix_server(on_client, path)
    return server, Endpoint(base_url="http://docker", uds=path)


class Collect:
    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.closed: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def on_line(self, line: bytes) -> None:
        self.lines.append(line)

    def on_close(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)


def chunked(*payloads: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in payloads) + b"0\r\n\r\n"


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize("step", [1, 2, 7, 4096])
async def test_chunked_lines_survive_any_split_and_a_clean_end_is_stream_ended(tmp_path: Path, step: int) -> None:
    docs = [orjson.dumps({"n": i, "pad": "x" * (i * 37)}) + b"\n" for i in range(5)]
    body = HEAD + chunked(docs[0], docs[1] + docs[2][:9], docs[2][9:], docs[3] + docs[4])

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for i in range(0, len(body), step):
            writer.write(body[i:i + step])
            await writer.drain()

    server, endpoint = await serve(tmp_path, handler)
    async with server:
        got = Collect()
        await open_line_stream(endpoint, "/stats", got.on_line, got.on_close, 5.0)
        ended = await asyncio.wait_for(got.closed, 10)
    assert [orjson.loads(line)["n"] for line in got.lines] == [0, 1, 2, 3, 4]
    assert isinstance(ended, StreamEnded)


async def test_a_stream_cut_mid_line_is_reported_truncated_not_ended(tmp_path: Path) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + b"9\r\n{\"n\": 1}\n\r\n" + b"5\r\n{\"n\":\r\n0\r\n\r\n")

    server, endpoint = await serve(tmp_path, handler)
    async with server:
        got = Collect()
        await open_line_stream(endpoint, "/stats", got.on_line, got.on_close, 5.0)
        ended = await asyncio.wait_for(got.closed, 10)
    assert got.lines == [b'{"n": 1}']
    assert isinstance(ended, StreamError) and not isinstance(ended, StreamEnded)
    assert "in the middle of a line" in str(ended)


async def test_many_streams_share_one_pump_and_are_read_on_its_tick(tmp_path: Path) -> None:
    """The event loop never watches stats sockets itself: one selector, drained every tick."""
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + b"9\r\n{\"n\": 1}\n\r\n")
        await writer.drain()
        await release.wait()

    server, endpoint = await serve(tmp_path, handler)
    async with server:
        streams = [Collect() for _ in range(20)]
        opened = [await open_line_stream(endpoint, "/stats", c.on_line, c.on_close, 5.0) for c in streams]
        pump = StatsPump.of(asyncio.get_running_loop())
        assert len(pump) == 20
        # a few ticks normally; the server's writes and the ticks run late on a loaded box, so wait
        # on the outcome with a generous deadline
        deadline = asyncio.get_running_loop().time() + 30.0
        while not all(c.lines for c in streams) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(pump.tick)
        assert all(c.lines == [b'{"n": 1}'] for c in streams), [c.lines for c in streams]
        assert len(pump) == 20  # still open, still on the pump
        for s in opened:
            s.abort()
        release.set()
        await asyncio.sleep(0)
        assert len(pump) == 0


async def test_an_oversized_partial_line_is_read_as_it_arrives_until_it_ends(tmp_path: Path) -> None:
    """On the tick a stream gets one socket buffer (~200 KiB) per 0.25 s, so an endless line would take
    longer to reach MAX_LINE than the trickle check allows; a line past HOT_LINE leaves the tick."""
    release = asyncio.Event()
    long_line = b"x" * (HOT_LINE + 1)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + chunked(long_line)[:-5])  # no terminating chunk: the stream goes on
        await writer.drain()
        await release.wait()
        writer.write(chunked(b"\n" + b'{"n": 2}\n')[:-5])
        await writer.drain()
        await asyncio.sleep(30)

    server, endpoint = await serve(tmp_path, handler)
    async with server:
        got = Collect()
        stream = await open_line_stream(endpoint, "/stats", got.on_line, got.on_close, 5.0)
        pump = StatsPump.of(asyncio.get_running_loop())
        transport = stream._transport
        for _ in range(200):
            if stream.pending_line > HOT_LINE:
                break
            await asyncio.sleep(pump.tick / 5)
        assert stream.pending_line > HOT_LINE
        assert transport.hot and len(pump) == 0  # off the selector, read by the loop as bytes come
        release.set()
        for _ in range(200):
            if len(got.lines) == 2:
                break
            await asyncio.sleep(pump.tick / 5)
        assert got.lines == [long_line, b'{"n": 2}']
        assert not transport.hot and len(pump) == 1  # a normal stream again, on the tick
        stream.abort()


async def test_an_endless_line_fails_at_max_line_not_on_a_timer(tmp_path: Path) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD)
        block = chunked(b"x" * 65536)[:-5]
        while True:
            writer.write(block)
            await writer.drain()

    server, endpoint = await serve(tmp_path, handler)
    async with server:
        got = Collect()
        await open_line_stream(endpoint, "/stats", got.on_line, got.on_close, 5.0)
        ended = await asyncio.wait_for(got.closed, 60)
    assert isinstance(ended, StreamError) and f"stream line exceeds {MAX_LINE} bytes" in str(ended)
    assert got.lines == []


async def lean_client(endpoint: Endpoint) -> EngineClient:
    inv = parse_inventory(f'[[node]]\nname = "n"\nurl = "unix://{endpoint.uds}"\n')
    return EngineClient(inv.nodes[0])


async def test_a_whole_answer_without_a_trailing_newline_is_one_document(tmp_path: Path) -> None:
    doc = orjson.dumps({"Id": "abc", "State": {"Running": True}})

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # keep-alive: the answer ends by its Content-Length, not by the server closing
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(doc), doc))
        await writer.drain()
        await asyncio.sleep(30)

    server, endpoint = await serve(tmp_path, handler)
    async with server:
        client = await lean_client(endpoint)
        got = await asyncio.wait_for(client.inspect_lean("abc"), 3)
        await client.aclose()
    assert got == {"Id": "abc", "State": {"Running": True}}


async def test_an_http_error_keeps_its_type_and_the_daemon_message(tmp_path: Path) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = b'{"message":"No such container: abc"}\n'
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    server, endpoint = await serve(tmp_path, handler)
    async with server:
        client = await lean_client(endpoint)
        with pytest.raises(NotFound, match="No such container: abc"):
            await client.inspect_lean("abc")
        await client.aclose()


async def test_an_answer_that_is_not_json_is_a_protocol_error_naming_the_node(tmp_path: Path) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n<html></html")

    server, endpoint = await serve(tmp_path, handler)
    async with server:
        client = await lean_client(endpoint)
        with pytest.raises(ProtocolError, match=r"^n: GET /containers/abc/json: invalid JSON"):
            await client.inspect_lean("abc")
        await client.aclose()
