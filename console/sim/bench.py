"""What one simulated node costs: CPU of a node process serving N concurrent stats streams.

    python -m console.sim.bench --streams 100 --seconds 20

Starts one `python -m console.sim.node` process with as many containers as streams, opens
one `stats?stream=1` connection per running container from this process (raw sockets, the
lines are counted, not parsed), lets the streams settle (--warmup: connecting and the first
request are not what is measured), then reads the node's CPU over the window from
/proc/PID/task/*/schedstat (nanoseconds; /proc/PID/stat's 10 ms ticks are too coarse for a
process at 1 % of a core) and its user/system split from /proc/PID/stat. The idle figure
(the node ticking its containers with nobody watching) is measured the same way first, so
the per-sample cost can be given net of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from console.sim.fleet import ping_socket


def _cpu_seconds(pid: int) -> float:
    """On-CPU time of every thread of the process, from the scheduler's nanosecond accounting."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def _user_sys(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def _stream(path: str, cid: str, counts: dict[str, int], stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(f"GET /v1.41/containers/{cid}/stats?stream=1 HTTP/1.1\r\nHost: docker\r\n\r\n".encode())
    await writer.drain()
    try:
        while not stop.is_set():
            data = await reader.read(65536)
            if not data:
                return
            counts[cid] += data.count(b"}\n")
    finally:
        writer.close()


@dataclass
class Window:
    streams: int
    samples: int
    wall_s: float
    cpu_s: float
    user_s: float
    sys_s: float


async def _run(path: str, pid: int, warmup: float, seconds: float) -> Window:
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(b"GET /v1.41/containers/json HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
    raw = await reader.read()
    writer.close()
    ids = [c["Id"] for c in json.loads(raw.split(b"\r\n\r\n", 1)[1])]
    counts = dict.fromkeys(ids, 0)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_stream(path, cid, counts, stop)) for cid in ids]
    await asyncio.sleep(warmup)
    n0, t0, c0, (u0, s0) = sum(counts.values()), time.monotonic(), _cpu_seconds(pid), _user_sys(pid)
    await asyncio.sleep(seconds)
    n1, t1, c1, (u1, s1) = sum(counts.values()), time.monotonic(), _cpu_seconds(pid), _user_sys(pid)
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return Window(len(ids), n1 - n0, t1 - t0, c1 - c0, u1 - u0, s1 - s0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m console.sim.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", type=int, default=100, help="containers (all running), one stream each")
    p.add_argument("--seconds", type=float, default=20.0, help="measured window")
    p.add_argument("--warmup", type=float, default=3.0, help="streams open before the window")
    p.add_argument("--idle", type=float, default=5.0, help="idle window, before any stream")
    p.add_argument("--cgroup", choices=("1", "2"), default="1")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="berth-simbench-") as d:
        sock = os.path.join(d, "docker.sock")
        # A node of a 3-node fleet that is neither the hot node nor hosts the one-off characters' stopped ones.
        proc = subprocess.Popen([sys.executable, "-m", "console.sim.node", "--socket", sock, "--index", "1",
                                 "--nodes", "3", "--containers-per-node", str(args.streams), "--cgroup", args.cgroup],
                                cwd=str(Path(__file__).resolve().parents[2]))
        try:
            deadline = time.monotonic() + 30
            while not (os.path.exists(sock) and ping_socket(sock)):
                if time.monotonic() > deadline or proc.poll() is not None:
                    print("node did not start", file=sys.stderr)
                    return 1
                time.sleep(0.05)
            time.sleep(1.0)  # past start-up
            idle0 = _cpu_seconds(proc.pid)
            time.sleep(args.idle)
            idle = (_cpu_seconds(proc.pid) - idle0) / args.idle
            w = asyncio.run(_run(sock, proc.pid, args.warmup, args.seconds))
            busy = w.cpu_s / w.wall_s
            rate = max(w.samples / w.wall_s, 1e-9)
            print(f"node idle: {idle * 100:.2f}% of one core")
            print(f"{w.streams} stats streams for {w.wall_s:.1f} s: {w.samples} samples ({rate:.0f}/s), "
                  f"node CPU {busy * 100:.2f}% of one core (user {w.user_s / w.wall_s * 100:.1f}%, "
                  f"system {w.sys_s / w.wall_s * 100:.1f}%): {busy / rate * 1e6:.1f} us/sample, "
                  f"{(busy - idle) / rate * 1e6:.1f} us/sample net of idle; RSS {_rss(proc.pid) / 2**20:.0f} MiB")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
