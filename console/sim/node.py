"""One simulated node: a SimDaemon behind an EngineServer on its own unix socket, flapping if told to.

Run one per process (`python -m console.sim.node ...`, what `berth sim` does) or
many on one event loop (`SimFleet(in_process=True)`, what `berth --demo` does).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import signal
import sys
from collections.abc import Sequence

from console.sim.daemon import API_VERSION, SimDaemon, parse_sim_api_version
from console.sim.model import Flap, NodeSpec, plan_node
from console.sim.server import EngineServer

log = logging.getLogger(__name__)


class SimNode:
    def __init__(self, spec: NodeSpec, socket_path: str, tick: float = 1.0, api_version: str = API_VERSION) -> None:
        self.spec = spec
        self.name = spec.name
        self.socket_path = socket_path
        self.daemon = SimDaemon(spec, tick=tick)
        self.daemon.api_version = api_version
        self.server = EngineServer(self.daemon, socket_path)
        self._flapper: asyncio.Task[None] | None = None

    @property
    def up(self) -> bool:
        return self.server.mode == "up"

    async def start(self) -> None:
        await self.daemon.start()
        await self.server.start()
        if self.spec.flap is not None:
            self._flapper = asyncio.create_task(self._flap(self.spec.flap), name=f"sim:{self.name}:flap")

    async def close(self) -> None:
        if self._flapper is not None:
            self._flapper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flapper
        await self.server.close()
        await self.daemon.close()

    async def _flap(self, flap: Flap) -> None:
        await asyncio.sleep(max(0.0, flap.up - flap.offset))
        while True:
            log.info("sim %s: going down (%s)", self.name, flap.mode)
            await self.server.go_down(flap.mode)
            if math.isinf(flap.down):
                return
            await asyncio.sleep(flap.down)
            log.info("sim %s: back up", self.name)
            await self.server.go_up()
            await asyncio.sleep(flap.up)


def parse_flap(text: str | None) -> Flap | None:
    """"UP:DOWN[:MODE]" in seconds ("inf" for DOWN: down for good), or "off"/""/None."""
    if not text or text == "off":
        return None
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"flap must be UP:DOWN[:MODE] or off, not {text!r}")
    up, down = float(parts[0]), float(parts[1])
    mode = parts[2] if len(parts) == 3 else "refuse"
    if up < 0 or down <= 0 or mode not in ("refuse", "reset", "hang"):
        raise ValueError(f"flap {text!r}: UP >= 0, DOWN > 0, MODE one of refuse, reset, hang")
    return Flap(up, down, mode)


def format_flap(flap: Flap | None) -> str:
    return "off" if flap is None else f"{flap.up:g}:{flap.down:g}:{flap.mode}"


async def serve(spec: NodeSpec, socket_path: str, tick: float = 1.0, api_version: str = API_VERSION) -> None:
    """Serve one node until SIGTERM/SIGINT, or until the parent process goes away."""
    node = SimNode(spec, socket_path, tick, api_version)
    await node.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()
    try:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if os.getppid() != parent:  # orphaned: the `berth sim` that started us is gone
                break
    finally:
        await node.close()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m console.sim.node",
                                description="serve one simulated Docker Engine API node of a seeded fleet")
    p.add_argument("--socket", required=True)
    p.add_argument("--index", type=int, required=True, help="which node of the fleet (0-based)")
    p.add_argument("--nodes", type=int, required=True)
    p.add_argument("--containers-per-node", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cgroup", choices=("1", "2", "mixed"), default="1")
    p.add_argument("--tenants", type=int, default=5)
    p.add_argument("--flap", default="off")
    p.add_argument("--tick", type=float, default=1.0)
    p.add_argument("--api-version", default=API_VERSION, type=parse_sim_api_version)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s sim: %(levelname)s %(message)s")
    spec = plan_node(args.index, args.nodes, args.containers_per_node, args.seed, args.cgroup, args.tenants,
                     parse_flap(args.flap))
    asyncio.run(serve(spec, args.socket, args.tick, args.api_version))
    return 0


if __name__ == "__main__":
    sys.exit(main())
