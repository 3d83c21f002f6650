"""Shared helpers for the fault tests: bounded waits on fleet snapshots, inventories, timings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from console.config import Inventory, parse_inventory
from console.fleet.model import ContainerSnapshot, FleetSnapshot, NodeState
from console.fleet.poller import Fleet

TIMINGS_FILE = Path(__file__).with_name("fault_timings.md")
# An idle container that stops at once on SIGTERM (busybox sh as PID 1 would ignore it)
IDLE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]


@dataclass(frozen=True)
class Timing:
    fault: str
    detect: float | None  # seconds from injecting the fault to the node shown down/degraded
    recover: float | None  # seconds from the node being healthy again to the node shown up
    state: str  # what the bad node was shown as
    reason: str  # the error text Berth showed
    note: str = ""


TIMINGS: list[Timing] = []


def require_lab(*tools: str) -> None:
    """The house lab gate (tests/lab/labgate.py): skip loudly, or fail under BERTH_REQUIRE_LAB=1,
    when real daemons cannot run here or one of `tools` is missing."""
    import shutil

    from labgate import require_lab as gate

    missing = [t for t in tools if shutil.which(t) is None]
    gate(f"missing {', '.join(missing)}" if missing else None)


def record(timing: Timing) -> None:
    """Keep a measurement for the summary (and print it for `-s` runs)."""
    TIMINGS.append(timing)
    det = f"{timing.detect:.2f}s" if timing.detect is not None else "-"
    rec = f"{timing.recover:.2f}s" if timing.recover is not None else "-"
    print(f"\n[fault timing] {timing.fault}: detect {det} ({timing.state}), recover {rec}; {timing.reason}"
          + (f" [{timing.note}]" if timing.note else ""))


def timings_markdown() -> str:
    lines = ["# Fault timings (written by tests/faults at runtime; not committed)", "",
             f"Run at {time.strftime('%Y-%m-%d %H:%M:%S')}.", "",
             "| fault | detect | shown as | recover | reason | note |", "|---|---|---|---|---|---|"]
    for t in TIMINGS:
        det = f"{t.detect:.2f} s" if t.detect is not None else "-"
        rec = f"{t.recover:.2f} s" if t.recover is not None else "-"
        reason = t.reason.replace("|", "\\|")
        lines.append(f"| {t.fault} | {det} | {t.state} | {rec} | {reason} | {t.note} |")
    return "\n".join(lines) + "\n"


def inventory(nodes: Iterable[tuple[str, ...]], extra: str = "", per_node: str = "") -> Inventory:
    """An inventory of (name, url[, toml lines]) nodes; `per_node` TOML lines go into every [[node]]."""
    out = ['[tenancy]', 'label = "tenant"']
    for name, url, *more in nodes:
        out += ["", "[[node]]", f'name = "{name}"', f'url = "{url}"', *more]
        if per_node:
            out.append(per_node)
    return parse_inventory("\n".join(out) + "\n" + extra)


async def wait_for(fleet: Fleet, predicate: Callable[[FleetSnapshot], bool], timeout: float,
                   what: str = "condition") -> FleetSnapshot:
    """Poll published snapshots until predicate holds; fail naming every node's state and error."""
    deadline = time.monotonic() + timeout
    snap = fleet.publish()
    while time.monotonic() < deadline:
        snap = fleet.publish()
        if predicate(snap):
            return snap
        await asyncio.sleep(0.05)
    states = {n.name: (n.state.value, n.error) for n in snap.nodes}
    raise AssertionError(f"{what}: not within {timeout}s; nodes: {states}")


def container(snap: FleetSnapshot, cid: str) -> ContainerSnapshot | None:
    return next((c for c in snap.containers if c.id == cid), None)


def sampled_since(snap: FleetSnapshot, cid: str, since: float) -> bool:
    c = container(snap, cid)
    return c is not None and c.sampled_at is not None and c.sampled_at > since


def state(snap: FleetSnapshot, node: str) -> NodeState:
    n = snap.node(node)
    assert n is not None, f"no node {node} in snapshot"
    return n.state


def bad(snap: FleetSnapshot, node: str) -> bool:
    """Shown as faulty: down or degraded, with a reason."""
    n = snap.node(node)
    return n is not None and n.state in (NodeState.DOWN, NodeState.DEGRADED) and bool(n.error)


def up(snap: FleetSnapshot, node: str) -> bool:
    n = snap.node(node)
    return n is not None and n.state is NodeState.UP


async def rss_peak(stop: asyncio.Event, out: list[int], every: float = 0.02) -> None:
    """Sample this process's RSS until stop is set; out[0] keeps the peak."""
    import psutil

    proc = psutil.Process()
    while not stop.is_set():
        out[0] = max(out[0], proc.memory_info().rss)
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            pass
