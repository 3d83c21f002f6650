"""`berth serve` with many consoles: server RSS and CPU per extra SSH console, node connections, and
key-to-frame latency through a real SSH client, on a simulated fleet.

    python3 -m bench.serve_sessions [--nodes 10] [--containers-per-node 100] [--sessions 1,5,10] [--seconds 20]

Starts `berth sim` (one process per node, the real Engine API), then `berth serve` on it, then opens
viewer consoles (asyncssh clients with a pty, 160x48, reading everything) in steps. At each step,
after the consoles show the fleet, it measures the server's RSS and CPU over a window (1 Hz snapshots
to every console) and the server's connections to the nodes. Then, with the most consoles attached,
an operator's console alternates panes (`2`, `3`) and the time from writing the key to the first
received bytes that show the new pane is the key-to-frame latency. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import psutil

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import asyncssh

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "serve"))
from servekit import ServeProcess, free_port, make_key, node_connections, team_toml  # noqa: E402

SGR = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


class Console(asyncssh.SSHClientSession):  # type: ignore[type-arg]
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: tuple[bytes, asyncio.Future[float]] | None = None
        self.ready = False  # the fleet is on screen

    def data_received(self, data: bytes, datatype: object) -> None:
        self.buffer += data
        del self.buffer[:-400_000]
        if not self.ready and b"Hosts" in SGR.sub(b"", bytes(self.buffer[-len(data) - 64:])):
            self.ready = True
        if self.waiter is not None:
            marker, fut = self.waiter
            if marker in SGR.sub(b"", bytes(self.buffer[-200_000:])) and not fut.done():
                fut.set_result(time.perf_counter())


async def open_console(port: int, key: Path, user: str) -> tuple[object, object, Console]:
    conn = await asyncssh.connect("127.0.0.1", port, username=user, client_keys=[str(key)], known_hosts=None,
                                  agent_path=None, config=None)
    chan, console = await conn.create_session(Console, term_type="xterm-256color", term_size=(160, 48),
                                              encoding=None)
    return conn, chan, console


async def until(check: object, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.2)


def cpu_over(proc: psutil.Process, seconds: float) -> float:
    t0, c0 = time.monotonic(), sum(proc.cpu_times()[:2])
    time.sleep(seconds)
    return (sum(proc.cpu_times()[:2]) - c0) / (time.monotonic() - t0)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--containers-per-node", type=int, default=100)
    parser.add_argument("--sessions", default="1,5,10")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--keys", type=int, default=40)
    args = parser.parse_args()
    steps = [int(x) for x in args.sessions.split(",")]
    work = Path(tempfile.mkdtemp(prefix="berth-bench-serve-"))
    os.chmod(work, 0o700)
    sim = subprocess.Popen([sys.executable, "-m", "console", "sim", "--nodes", str(args.nodes),
                            "--containers-per-node", str(args.containers_per_node), "--flap", "off",
                            "--dir", str(work / "sim")], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server: ServeProcess | None = None
    try:
        inventory = work / "sim" / "inventory.toml"
        deadline = time.monotonic() + 120
        while not inventory.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        port = free_port()
        viewer, operator = make_key(work, "viewer"), make_key(work, "operator")
        team = work / "team.toml"
        team.write_text(inventory.read_text() + "\n" + team_toml(port, [("viewer", "viewer", viewer),
                                                                        ("op", "operator", operator)],
                                                                  max_sessions=64))
        server = ServeProcess(["--inventory", str(team)], {"XDG_STATE_HOME": str(work / "state")})
        server.wait_ready()
        proc = psutil.Process(server.proc.pid)
        sockets = [p for p in (work / "sim").rglob("*.sock")]
        await asyncio.sleep(5)
        idle_rss = proc.memory_info().rss
        idle_cpu = await asyncio.to_thread(cpu_over, proc, args.seconds)
        idle_conns = sum(node_connections(proc.pid, sockets).values())
        rows = [("0 (poller only)", idle_rss, idle_cpu, idle_conns)]
        consoles: list[tuple[object, object, Console]] = []
        for n in steps:
            while len(consoles) < n:
                consoles.append(await open_console(port, viewer.path, "viewer"))
            for _, _, c in consoles:
                await until(lambda c=c: c.ready)
            await asyncio.sleep(5)
            cpu = await asyncio.to_thread(cpu_over, proc, args.seconds)
            rows.append((str(n), proc.memory_info().rss, cpu, sum(node_connections(proc.pid, sockets).values())))
        # key to frame with the most consoles attached, through a real SSH client
        conn, chan, op = await open_console(port, operator.path, "op")
        await until(lambda: op.ready)
        latencies = []
        for i in range(args.keys):
            key, marker = (b"3", b"Tenants \xc2\xb7") if i % 2 == 0 else (b"2", b"Containers \xc2\xb7")
            op.buffer.clear()
            fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            op.waiter = (marker, fut)
            sent = time.perf_counter()
            chan.write(key)  # type: ignore[attr-defined]
            try:
                latencies.append((await asyncio.wait_for(fut, 10)) - sent)
            except asyncio.TimeoutError:
                pass
            op.waiter = None
            await asyncio.sleep(0.2 + (i % 7) * 0.05)
        print(f"\nberth serve, simulated fleet {args.nodes}x{args.containers_per_node}, viewers at 160x48, "
              f"1 Hz snapshots, window {args.seconds:g}s")
        print(f"{'consoles':>16} {'server RSS':>11} {'server CPU':>11} {'node conns':>11}")
        for name, rss, cpu, conns in rows:
            print(f"{name:>16} {rss / 1024**2:>8.1f} MB {cpu:>7.3f} cores {conns:>11}")
        first, last = rows[1], rows[-1]
        extra = int(last[0]) - int(first[0])
        if extra > 0:
            print(f"per extra console: {(last[1] - first[1]) / extra / 1024**2:.1f} MB RSS (target <= 40), "
                  f"{(last[2] - first[2]) / extra * 100:.1f} % of a core (target <= 3)")
        if latencies:
            latencies.sort()
            p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
            print(f"key to frame over ssh with {len(consoles)} viewers attached: p50 "
                  f"{statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms (target p95 <= 50), "
                  f"{len(latencies)}/{args.keys} keys seen")
        for c, _, _ in consoles:
            c.close()  # type: ignore[attr-defined]
        conn.close()  # type: ignore[attr-defined]
    finally:
        if server is not None:
            server.stop()
        sim.terminate()
        sim.wait(30)


if __name__ == "__main__":
    asyncio.run(main())
