"""The pre-encoded stats stream is the reference documents, byte for byte.

The tick renders each watched container's sample from a per-container template
(`samples.render`) and splices each reader's previous sample in (`Sample.json`/`chunk`).
The reference is the dict path the sim used before, kept for one-shot reads:
`go_json(with_pre(stats_sample(c, now), previous))`. Given a seeded node and a frozen
clock, both must give the same bytes (hence the same fields, order, numbers and Go
formatting) for every container, in every state, on cgroup v1 and v2, and after the
things a template bakes in change (rename, memory limits, networks). Over the wire the
chunks must be those bytes framed as h11 frames them, and a reader that stops reading
must not make the node buffer without bound.
"""

from __future__ import annotations

import asyncio
import gc
import os
from typing import Any

import h11
import orjson
import pytest

from console.sim import model, server
from console.sim.daemon import Container, SimDaemon
from console.sim.model import plan_fleet
from console.sim.node import SimNode
from console.sim.samples import Sample, go_json, with_pre

T0 = 1_764_000_000.125  # the frozen clock: a tick at T0 + k for k = 1, 2, ...


def frozen(cgroup: str, seed: int, node: int = 1, containers: int = 40) -> SimDaemon:
    d = SimDaemon(plan_fleet(3, containers, seed=seed, cgroup=cgroup).nodes[node])
    d.started = d.last_tick = T0
    return d


class Twin:
    """Both paths over one daemon: each container's previous sample in each representation."""

    def __init__(self, d: SimDaemon) -> None:
        self.d = d
        self.pre_ref: dict[str, dict[str, Any]] = {}
        self.pre_fast: dict[str, Sample] = {}

    def step(self, now: float) -> list[tuple[Container, bytes, bytes]]:
        self.d.tick(now)
        out = []
        for c in list(self.d.containers.values()):
            ref_doc = self.d.stats_sample(c, now)
            fast = self.d.render_stats(c, now)
            out.append((c, go_json(with_pre(ref_doc, self.pre_ref.get(c.id))), fast.json(self.pre_fast.get(c.id))))
            self.pre_ref[c.id], self.pre_fast[c.id] = ref_doc, fast
        return out


def assert_same(pairs: list[tuple[Container, bytes, bytes]]) -> None:
    for c, ref, fast in pairs:
        assert fast == ref, f"{c.name} ({c.state}): the streamed sample drifted from the reference document"
        a, b = orjson.loads(ref), orjson.loads(fast)
        assert list(a) == list(b) and a == b  # (implied by the bytes; says what broke if it ever fails)


@pytest.mark.parametrize("cgroup", ["1", "2"])
@pytest.mark.parametrize("seed", [0, 3, 11])
def test_every_container_every_tick_is_the_reference_document(cgroup: str, seed: int) -> None:
    # Given a seeded node on a frozen clock
    twin = Twin(frozen(cgroup, seed))
    states: set[str] = set()
    # When it ticks for a while (loads move, limits throttle, some containers exit or restart)
    for k in range(1, 9):
        pairs = twin.step(T0 + k)
        states |= {c.state for c, _, _ in pairs}
        # Then every sample, with every reader's own previous one spliced in, is the reference's bytes
        assert_same(pairs)
    assert "running" in states and states - {"running"}  # stopped containers' empty samples were compared too


def test_same_seed_and_clock_give_the_same_bytes() -> None:
    a, b = Twin(frozen("1", 5)), Twin(frozen("1", 5))
    for k in range(1, 4):
        assert [f for _, _, f in a.step(T0 + k)] == [f for _, _, f in b.step(T0 + k)]


@pytest.mark.parametrize("cgroup", ["1", "2"])
def test_what_a_template_bakes_in_can_change_under_it(cgroup: str) -> None:
    # Given a node whose containers have been sampled (templates built)
    twin = Twin(frozen(cgroup, 2))
    assert_same(twin.step(T0 + 1))
    d = twin.d
    running = [c for c in d.containers.values() if c.state == "running"]
    a, b, c = running[:3]
    # When one is renamed, one gets new limits, one leaves its network, and one is paused
    d.rename(a.id, "renamed-" + a.name)
    d.update(b.id, {"Memory": 3 * 2**30, "MemorySwap": 6 * 2**30, "PidsLimit": 321})
    for net in list(c.networks):
        d.disconnect(net, {"Container": c.id})
    asyncio.run(d.pause_container(running[3].id))
    # Then the next samples still match the reference, field for field
    for k in (2, 3):
        assert_same(twin.step(T0 + k))
    docs = {x.id: orjson.loads(d.render_stats(x, T0 + 3).json(None)) for x in (a, b, c)}
    assert docs[a.id]["name"] == "/" + a.name and a.name.startswith("renamed-")
    assert docs[b.id]["memory_stats"]["limit"] == 3 * 2**30
    assert "networks" not in docs[c.id]


def test_the_chunk_is_the_document_framed_as_h11_frames_it() -> None:
    twin = Twin(frozen("1", 1))
    twin.step(T0 + 1)
    c = next(c for c in twin.d.containers.values() if c.state == "running")
    first = twin.d.render_stats(c, T0 + 1)
    twin.d.tick(T0 + 2)
    second = twin.d.render_stats(c, T0 + 2)
    for sample, pre in ((first, None), (second, first)):
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(b"GET /containers/x/stats HTTP/1.1\r\nHost: docker\r\n\r\n")
        conn.next_event()
        conn.send(h11.Response(status_code=200, headers=[("Transfer-Encoding", "chunked")]))
        assert conn.send(h11.Data(data=sample.json(pre))) == sample.chunk(pre)


class _Sent:
    """A transport that takes every write at once (a reader that keeps up)."""

    def __init__(self) -> None:
        self.writes = 0

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes) -> None:
        self.writes += 1


async def test_a_long_stream_keeps_one_previous_sample_not_its_history() -> None:
    # Given a reader on every running container of a node
    d = frozen("1", 1)
    loop = asyncio.get_running_loop()
    up = asyncio.Event()
    up.set()
    readers = []
    for c in d.containers.values():
        if c.state == "running":
            r = server._StatsReader(_Sent(), up, loop.create_future())  # type: ignore[arg-type]
            d.subscribe_stats(c, r)
            readers.append(r)
    # When the node ticks for five simulated minutes
    for k in range(1, 301):
        d.tick(T0 + k)
    # Then every reader got every sample, and what stays alive is about one sample per reader
    assert all(r.transport.writes == 300 for r in readers)  # type: ignore[attr-defined]
    gc.collect()
    alive = sum(isinstance(o, Sample) for o in gc.get_objects())
    assert alive <= 2 * len(readers), f"{alive} samples alive for {len(readers)} readers: a sample chain leaks"


# -- over the wire ------------------------------------------------------------------


async def _open_stream(path: str, cid: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(f"GET /v1.41/containers/{cid}/stats HTTP/1.1\r\nHost: docker\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Transfer-Encoding: chunked" in head
    return reader, writer


async def _chunk(reader: asyncio.StreamReader) -> bytes:
    size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
    data = await reader.readexactly(size + 2)
    assert data.endswith(b"\r\n")
    return data[:-2]


async def _subscribed(d: SimDaemon, cid: str, n: int) -> None:
    while len(d._stats_subs.get(cid, ())) < n:
        await asyncio.sleep(0.005)


async def test_the_stream_a_client_reads_is_the_reference_documents(tmp_path: Any) -> None:
    # Given a node whose own clock never ticks (the test ticks it), and two readers of one container
    spec = plan_fleet(3, 12, seed=7, cgroup="1").nodes[1]
    node = SimNode(spec, str(tmp_path / "docker.sock"), tick=3600.0)
    await node.start()
    d = node.daemon
    d.started = d.last_tick = T0
    try:
        c = next(c for c in d.containers.values() if c.state == "running" and c.role == model.NORMAL)
        r1, w1 = await _open_stream(node.socket_path, c.id)
        await _subscribed(d, c.id, 1)
        # When the node ticks three times, and a second reader joins after the first tick
        pre: dict[str, Any] | None = None
        for k in range(1, 4):
            d.tick(T0 + k)
            ref_doc = d.stats_sample(c, T0 + k)
            got = await _chunk(r1)
            # Then the first reader gets each reference document, its previous sample as precpu
            assert got == go_json(with_pre(ref_doc, pre))
            if k == 1:
                r2, w2 = await _open_stream(node.socket_path, c.id)
                await _subscribed(d, c.id, 2)
            else:
                # and the second one's stream starts with empty precpu_stats, like a fresh dockerd stream
                got2 = await _chunk(r2)
                assert got2 == go_json(with_pre(ref_doc, None if k == 2 else pre))
            pre = ref_doc
        # When the container is removed, both streams end with the last chunk, as dockerd's do
        await d.remove(c.id, force=True)
        for r in (r1, r2):
            assert await r.readuntil(b"0\r\n\r\n") == b"0\r\n\r\n"
        for w in (w1, w2):
            w.close()
    finally:
        await node.close()


async def test_a_reader_that_stops_reading_costs_a_bounded_buffer(tmp_path: Any) -> None:
    # Given a reader that opened a stream and then never reads (a stuck client)
    spec = plan_fleet(3, 12, seed=7, cgroup="1").nodes[1]
    node = SimNode(spec, str(tmp_path / "docker.sock"), tick=3600.0)
    await node.start()
    d = node.daemon
    try:
        c = next(c for c in d.containers.values() if c.state == "running")
        reader, writer = await _open_stream(node.socket_path, c.id)
        writer.transport.pause_reading()  # the client's kernel buffer fills, then the node's
        await _subscribed(d, c.id, 1)
        (sink,) = d._stats_subs[c.id]
        assert isinstance(sink, server._StatsReader)
        size = len(d.render_stats(c, d.last_tick).chunk(None))
        # When the node ticks far more often than the socket buffers can hold
        for k in range(1, 2000):
            d.tick(d.last_tick + 1.0)
            if k % 50 == 0:
                await asyncio.sleep(0)  # let the loop try to flush
        # Then the node holds at most the limit plus one sample for it, and drops the rest
        assert sink.transport.get_write_buffer_size() <= server.STATS_BUFFER + size
        assert sink.dropped > 0
        # And when the reader catches up, samples flow again
        writer.transport.resume_reading()
        await asyncio.sleep(0.05)
        d.tick(d.last_tick + 1.0)
        last = d.render_stats(c, d.last_tick).read
        while orjson.loads(await asyncio.wait_for(_chunk(reader), 5))["read"].encode() != last:
            pass
        writer.close()
    finally:
        await node.close()
    assert not os.path.exists(node.socket_path)
