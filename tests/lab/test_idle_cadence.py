"""The observer budget against a real dockerd: idle containers leave their stats stream for a
slower one-shot cadence, come back to full rate when busy or on screen, and keep being sampled.

dockerd collects stats only for containers somebody subscribed to, so the node's saving is the
number of subscriptions: that is what these tests watch (the streams Berth holds open), besides
what the operator sees (fresh samples, the right CPU figure).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from dockerlab import Lab

from console.config import load_inventory, parse_inventory
from console.fleet.model import FleetSnapshot
from console.fleet.poller import Fleet, NodeWatcher

# Blocks reading a FIFO, then burns a whole core: idle until the test writes to it (GO). Blocked, it
# uses no CPU at all; a polling loop forking `sleep` five times a second could read over IDLE_CPU
# (1 % of a core) on a loaded box and never count as idle.
BURN_ON_GO = ["sh", "-c", "mkfifo /tmp/go && read go < /tmp/go; while :; do :; done"]
GO = ["sh", "-c", "echo go > /tmp/go"]


class QuickIdle(NodeWatcher):
    idle_after = 3  # idle samples before the cadence drops (10 in production): keeps the test short


async def until(what: Callable[[], bool], timeout: float, why: str) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {why}")
        await asyncio.sleep(0.1)


def inventory(lab: Lab, tmp_path: Path, interval: float) -> Path:
    return lab.write_inventory(tmp_path / "inventory.toml", node_settings={"stats_idle_interval": interval})


def on_idle_cadence(w: NodeWatcher, cid: str) -> bool:
    c = w.containers.get(cid)
    return c is not None and c.idle_runs >= w.idle_after and cid not in w._streams


def sampled_at(snap: FleetSnapshot, cid: str) -> float:
    c = next(c for c in snap.containers if c.id == cid)
    return c.sampled_at or 0.0


@pytest.mark.lab
async def test_idle_containers_drop_to_the_idle_cadence_and_a_busy_one_comes_back(
        scratch_lab: Lab, tmp_path: Path) -> None:
    # Given one node with two idle containers and an idle cadence of 2 s
    node = scratch_lab.nodes[0]
    quiet = node.run_container("quiet")
    burner = node.run_container("burner", BURN_ON_GO)
    inv = load_inventory(inventory(scratch_lab, tmp_path, 2.0))
    async with Fleet(inv, watcher_factory=QuickIdle) as fleet:
        w = next(w for w in fleet.watchers if w.name == node.name)
        assert w.idle_interval == 2.0
        # When both have been idle for a few samples
        await until(lambda: on_idle_cadence(w, quiet) and on_idle_cadence(w, burner), 30,
                    "both idle containers leave their stats streams")
        # Then they are still sampled, at the slower cadence, through one-shot reads
        t0 = time.time()
        # (the first one-shot comes idle_interval * (1 + spread) after the drop, spread in [0, 1), on the
        # idle loop's next 1 s scan, bounded here by the heartbeat, and is answered within the call timeout)
        await until(lambda: sampled_at(fleet.publish(), quiet) > t0 and sampled_at(fleet.publish(), burner) > t0,
                    2 * w.idle_interval + w.heartbeat + w.cfg.timeout + 3.0,
                    "one-shot samples keep arriving for idle containers")
        assert quiet not in w._streams and not w.partial_errors, w.partial_errors
        snap = fleet.publish()
        assert next(c for c in snap.containers if c.id == quiet).cpu_percent is not None

        # When the burner starts burning a core
        with closing(node.client()) as client:
            client.containers.get(burner).exec_run(GO)
        # Then its next one-shot sample sees it busy and it is streamed at full rate again
        await until(lambda: burner in w._streams, 15, "the busy container is streamed again")
        # (well above the idle mark, and low enough for a loop to reach on a machine shared with other work)
        await until(lambda: (next(c for c in fleet.publish().containers if c.id == burner).cpu_percent or 0) > 10,
                    15, "the burner reads a busy CPU figure")
        assert quiet not in w._streams  # the quiet one stays on the idle cadence


@pytest.mark.lab
async def test_a_container_on_screen_streams_at_full_rate_however_idle(scratch_lab: Lab, tmp_path: Path) -> None:
    node = scratch_lab.nodes[0]
    quiet = node.run_container("quiet")
    inv = load_inventory(inventory(scratch_lab, tmp_path, 2.0))
    async with Fleet(inv, watcher_factory=QuickIdle) as fleet:
        w = next(w for w in fleet.watchers if w.name == node.name)
        await until(lambda: on_idle_cadence(w, quiet), 30, "the idle container leaves its stream")
        # When the operator opens it (the UI sets the focus)
        fleet.set_focus({quiet})
        # Then it is streamed at once, and stays streamed while on screen
        assert quiet in w._streams
        await asyncio.sleep(5)
        assert quiet in w._streams
        # And leaves the stream again when it is off screen
        fleet.set_focus(())
        assert quiet not in w._streams


def test_no_idle_cadence_over_tls_or_when_the_interval_is_a_second_or_less() -> None:
    """A one-shot read over TLS costs a handshake each, more than the subscription it saves."""
    inv = parse_inventory(
        '[[node]]\nname = "tls"\nurl = "tcp://127.0.0.1:2376"\n[node.tls]\nverify = true\n'
        '[[node]]\nname = "fast"\nurl = "unix:///var/run/docker.sock"\nstats_idle_interval = 1\n'
        '[[node]]\nname = "plain"\nurl = "unix:///run/berth-other/docker.sock"\n')  # one daemon, one node
    watchers = {cfg.name: NodeWatcher(cfg, inv, lambda *a: None) for cfg in inv.nodes}
    assert watchers["tls"].idle_interval == 0.0
    assert watchers["fast"].idle_interval == 0.0
    assert watchers["plain"].idle_interval == 5.0
