"""A simulated fleet: N Engine API nodes on unix sockets plus the Berth inventory that lists them.

Two ways to run it, same wire protocol:

* `SimFleet(..., in_process=False)`: one `python -m console.sim.node` process per node
  (what `berth sim` and the scale benchmarks use: nodes do not share a GIL with Berth);
* `SimFleet(..., in_process=True)`: every node on one event loop in a background thread
  of this process (what `berth --demo` uses: no Docker, no root, no child processes).

`start_demo_fleet()` builds the incident the demo triages: a hot tenant eating one node,
a node that goes down shortly after start, a restart loop, an OOM-killed container, a
leaking container that gets OOM-killed live, and a tenant over its quota.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import http.client
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from console.safefs import StateDir
from console.sim.model import Flap, FleetLayout, plan_fleet
from console.sim.node import SimNode, format_flap

MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with the terminating NUL
DEMO_SEED = 7
START_TIMEOUT = 30.0


class SimError(RuntimeError):
    """The simulated fleet could not start (bad directory, socket path too long, a node died)."""


def ping_socket(path: str, timeout: float = 1.0) -> bool:
    """True when an Engine API answers GET /_ping (with an Api-Version header) on this unix socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        conn = http.client.HTTPConnection("docker", timeout=timeout)
        conn.sock = sock
        conn.request("GET", "/_ping")
        resp = conn.getresponse()
        resp.read()
        return resp.status == 200 and bool(resp.getheader("Api-Version"))
    except (OSError, http.client.HTTPException):
        return False
    finally:
        sock.close()


class SimFleet:
    """Start on `__enter__` (or `start()`), stop on `__exit__` (or `close()`).

    dir: where `<node>/docker.sock` and `inventory.toml` go; a fresh temp dir when None
    (removed on close). flap: applied to the last node of fleets of three or more.
    """

    def __init__(self, nodes: int = 3, containers_per_node: int = 20, seed: int = 0,
                 dir: str | os.PathLike[str] | None = None, in_process: bool = False, *, cgroup: str = "1",
                 tenants: int = 5, flap: Flap | None = None, tick: float = 1.0, api_version: str = "1.41") -> None:
        self.layout: FleetLayout = plan_fleet(nodes, containers_per_node, seed, cgroup, tenants, flap)
        self.nodes_count = nodes
        self.containers_per_node = containers_per_node
        self.seed = seed
        self.cgroup = cgroup
        self.tenants = tenants
        self.flap = flap
        self.tick = tick
        self.api_version = api_version  # the newest Engine API the nodes serve, and its shapes
        self.in_process = in_process
        self._own_dir = dir is None
        # Without a dir, the paths are final only once start() has made the temp dir.
        self._place(Path(dir) if dir is not None else Path(tempfile.gettempdir(), "berth-sim-unstarted"))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._nodes: dict[str, SimNode] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._made: list[Path] = []
        self._started = False

    # -- public ----------------------------------------------------------------

    @property
    def urls(self) -> dict[str, str]:
        return {name: f"unix://{path}" for name, path in self.sockets.items()}

    def node(self, name: str) -> SimNode:
        """The live node object (in-process fleets only): for tests that poke at a node."""
        if not self.in_process:
            raise SimError("node objects exist only in an in-process fleet")
        return self._nodes[name]

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run fn on the fleet's event loop and return its result (awaited if a coroutine)."""
        if self._loop is None:
            raise SimError("not an in-process fleet, or not started")

        async def run() -> Any:
            out = fn()
            return await out if asyncio.iscoroutine(out) else out

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    def _place(self, directory: Path) -> None:
        self.dir: Path = directory
        self.sockets: dict[str, Path] = {n.name: directory / n.name / "docker.sock" for n in self.layout.nodes}
        self.inventory_path: Path = directory / "inventory.toml"

    def start(self) -> Self:
        if self._started:
            return self
        self._started = True
        if self._own_dir:  # made here, not in __init__: a fleet built only to read its layout leaves nothing
            self._place(Path(tempfile.mkdtemp(prefix="berth-sim-")))
        atexit.register(self.close)  # backstop for a caller that never closes
        try:
            self._prepare_dirs()
            if self.in_process:
                self._start_in_process()
            else:
                self._start_processes()
            self.write_inventory()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        atexit.unregister(self.close)
        if self._loop is not None and self._thread is not None:
            loop = self._loop

            async def shutdown() -> None:
                await asyncio.gather(*(n.close() for n in self._nodes.values()), return_exceptions=True)

            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout=10)
            self._loop = None
            self._thread = None
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()  # our own child, by its own pid
        deadline = time.monotonic() + 5
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.procs.clear()
        self._cleanup_files()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def dead_nodes(self) -> list[str]:
        """Node processes that exited on their own (subprocess fleets)."""
        return [name for name, proc in self.procs.items() if proc.poll() is not None]

    def write_inventory(self) -> Path:
        """A Berth inventory for the fleet, with tenant quotas (the hot tenant's is exceeded)."""
        from console.config import Inventory, NodeConfig, TenantQuota, render_inventory

        nodes = tuple(NodeConfig(name=n.name, url=self.urls[n.name],
                                 labels=(*n.labels, ("cgroup", f"v{n.cgroup}")))
                      for n in self.layout.nodes)
        tenants = {t: TenantQuota(t, cpu=cpu, memory=mem) for t, (cpu, mem) in self.layout.quotas.items()}
        inv = Inventory(nodes=nodes, tenancy_label="tenant", tenants=tenants)
        header = (f"# Simulated fleet: {len(nodes)} nodes x {self.containers_per_node} containers, "
                  f"seed {self.seed}, cgroup {self.cgroup}, flap {format_flap(self.flap)}\n"
                  f"# Written by console.sim; every node is a simulated Docker Engine API (not a real daemon).\n"
                  f"[tenancy]\nlabel = \"tenant\"\n\n")
        # Atomic, and never through a link or into someone else's file (console/safefs.py).
        StateDir(self.dir).replace(self.inventory_path.name, (header + render_inventory(inv)).encode(), mode=0o644)
        if self.inventory_path not in self._made:
            self._made.append(self.inventory_path)
        return self.inventory_path

    # -- internals -------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        for path in self.sockets.values():  # every check before anything is made (or later removed)
            if len(str(path)) > MAX_SOCKET_PATH:
                raise SimError(f"{path} is too long for a unix socket ({len(str(path))} > {MAX_SOCKET_PATH} "
                               f"bytes): use a shorter --dir")
        # --dir: made 0700 when missing; one that exists must be ours and not writable by others, or
        # anyone could swap a socket, the inventory or a node's log for a link (console/safefs.py).
        top = StateDir(self.dir)
        top.check()
        for path in self.sockets.values():
            if path.exists() and ping_socket(str(path), 0.5):
                raise SimError(f"{path} is already served by a running daemon: use another --dir")
        for path in self.sockets.values():
            existed = os.path.lexists(path.parent)
            top.sub(path.parent.name).check()
            if not existed:
                self._made.append(path.parent)
            self._made.append(path)

    def _start_in_process(self) -> None:
        ready = threading.Event()
        failure: list[Exception] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop

            async def boot() -> None:
                for spec in self.layout.nodes:
                    node = SimNode(spec, str(self.sockets[spec.name]), tick=self.tick, api_version=self.api_version)
                    await node.start()
                    self._nodes[spec.name] = node

            try:
                loop.run_until_complete(boot())
            except Exception as exc:  # noqa: BLE001 - re-raised in the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="berth-sim", daemon=True)
        self._thread.start()
        ready.wait(START_TIMEOUT)
        if failure:
            self._loop = None
            self._thread.join(timeout=5)
            self._thread = None
            raise SimError(f"simulated fleet failed to start: {failure[0]}") from failure[0]

    def _start_processes(self) -> None:
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        for spec in self.layout.nodes:
            sock = self.sockets[spec.name]
            log_path = sock.parent / "node.log"
            self._made.append(log_path)
            cmd = [sys.executable, "-m", "console.sim.node", "--socket", str(sock), "--index", str(spec.index),
                   "--nodes", str(self.nodes_count), "--containers-per-node", str(self.containers_per_node),
                   "--seed", str(self.seed), "--cgroup", self.cgroup, "--tenants", str(self.tenants),
                   "--flap", format_flap(self.flap), "--tick", str(self.tick), "--api-version", self.api_version]
            log = StateDir(sock.parent).open_append(log_path.name, private=False, mode=0o644)
            try:
                # Own session: a Ctrl-C in the terminal reaches `berth sim`, which stops the nodes in order.
                self.procs[spec.name] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                                         stderr=subprocess.STDOUT, env=env, start_new_session=True)
            finally:
                os.close(log)
        deadline = time.monotonic() + START_TIMEOUT + 0.2 * len(self.procs)
        pending = dict(self.sockets)
        while pending:
            for name in list(pending):
                proc = self.procs[name]
                if proc.poll() is not None:
                    log_text = (StateDir(pending[name].parent).read("node.log") or b"").decode(errors="replace")[-800:]
                    raise SimError(f"sim node {name} exited with {proc.returncode} while starting: {log_text}")
                if pending[name].exists() and ping_socket(str(pending[name]), 1.0):
                    del pending[name]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise SimError(f"sim nodes did not answer /_ping in time: {', '.join(sorted(pending))}")
            time.sleep(0.05)

    def _cleanup_files(self) -> None:
        for path in reversed(self._made):
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                else:
                    path.unlink()
        self._made.clear()
        if self._own_dir and self._started:
            shutil.rmtree(self.dir, ignore_errors=True)


def demo_fleet(dir: str | os.PathLike[str] | None = None, *, seed: int = DEMO_SEED, nodes: int = 6,
               containers_per_node: int = 30, down_after: float = 8.0) -> SimFleet:
    """The demo's fleet, not started: mixed cgroup v1/v2 nodes, the last one going down
    (connection refused) `down_after` seconds after start and staying down."""
    if not 5 <= nodes <= 8:
        raise ValueError("the demo fleet has 5 to 8 nodes")
    return SimFleet(nodes, containers_per_node, seed, dir, in_process=True, cgroup="mixed",
                    flap=Flap(up=down_after, down=math.inf, mode="refuse"))


def start_demo_fleet(dir: str | os.PathLike[str] | None = None, *, seed: int = DEMO_SEED, nodes: int = 6,
                     containers_per_node: int = 30, down_after: float = 8.0) -> tuple[Path, Callable[[], None]]:
    """Start the demo fleet in this process; returns (inventory path, closer).

    Needs no Docker and no root: every node is served from a background thread.
    Call the closer (idempotent) to stop the nodes and remove the sockets.
    """
    fleet = demo_fleet(dir, seed=seed, nodes=nodes, containers_per_node=containers_per_node,
                       down_after=down_after).start()
    return fleet.inventory_path, fleet.close


def run_until_signalled(fleet: SimFleet, out: Callable[[str], None] = print) -> int:
    """Block until SIGINT/SIGTERM (what `berth sim` does after starting the fleet), then close it."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    reported: set[str] = set()
    try:
        while not stop.wait(1.0):
            for name in fleet.dead_nodes():
                if name not in reported:
                    reported.add(name)
                    out(f"berth sim: node {name} exited unexpectedly (see {fleet.sockets[name].parent}/node.log)")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        fleet.close()
    return 0
