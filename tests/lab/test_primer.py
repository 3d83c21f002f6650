"""The start-up primer against a real dockerd: a container's first CPU figure comes from a one-shot
sample paired with another sample, not from two of its stream's 1 Hz samples, so the first
complete screen does not wait for dockerd's second collection. The one-shot reads (and the
inspects) ride on the node's few kept-alive connections."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest
from dockerlab import Lab

from console.config import load_inventory
from console.engine.client import EngineClient
from console.fleet.poller import Fleet

BURN = ["sh", "-c", "while :; do :; done"]


@pytest.mark.lab
async def test_a_new_container_shows_cpu_before_its_stream_gives_two_samples(
        scratch_lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a node with one container burning a core, and a count of samples by where they came from
    node = scratch_lab.nodes[0]
    burner = node.run_container("burner", BURN)
    seen: Counter[str] = Counter()
    stream_samples_at_first_cpu: list[int] = []
    real_open, real_request = EngineClient.open_lines, EngineClient.request_lean

    async def counting_open(self, path, on_line, on_close, **kw):  # type: ignore[no-untyped-def]
        kind = "one-shot" if "one-shot=true" in path else "stream"

        def counted(line: bytes) -> None:
            seen[kind] += 1
            on_line(line)
        return await real_open(self, path, counted, on_close, **kw)

    async def counting_request(self, path, on_answer):  # type: ignore[no-untyped-def]
        def counted(body, err):  # type: ignore[no-untyped-def]
            if body is not None and "one-shot=true" in path:
                seen["one-shot"] += 1
            on_answer(body, err)
        return await real_request(self, path, counted)

    monkeypatch.setattr(EngineClient, "open_lines", counting_open)
    monkeypatch.setattr(EngineClient, "request_lean", counting_request)
    inv = load_inventory(scratch_lab.write_inventory(tmp_path / "inventory.toml"))
    async with Fleet(inv) as fleet:
        w = next(w for w in fleet.watchers if w.name == node.name)
        assert w.prime
        deadline = time.monotonic() + 30
        while (c := w.containers.get(burner)) is None or c.cpu_percent is None:
            assert time.monotonic() < deadline, f"no CPU figure within 30 s; samples {dict(seen)}"
            await asyncio.sleep(0.01)
        stream_samples_at_first_cpu.append(seen["stream"])
        first_cpu = c.cpu_percent
        pool = w.client._pool
        assert pool is not None and pool.connections_made <= pool.size
    # Then the figure needed a one-shot sample and at most one of the stream's
    assert seen["one-shot"] >= 1
    assert stream_samples_at_first_cpu[0] <= 1, dict(seen)
    # and it is a real figure: the burner gets a good share of a core even on a busy 2-core machine
    assert first_cpu > 20.0, first_cpu
