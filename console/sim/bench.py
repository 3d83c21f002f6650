"""What one simulated node costs: CPU of a node process serving N concurrent stats streams.

    python -m console.sim.bench --streams 100 --seconds 20

Starts one `python -m console.sim.node` process with as many containers as streams, opens
one `stats?stream=1` connection per running container from this process (raw sockets, the
lines are counted, not parsed), and reads the node's utime+stime from /proc over the window.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from console.sim.fleet import ping_socket


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


async def _run(path: str, seconds: float) -> tuple[int, int]:
    import json

    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(b"GET /v1.41/containers/json HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
    raw = await reader.read()
    writer.close()
    ids = [c["Id"] for c in json.loads(raw.split(b"\r\n\r\n", 1)[1])]
    counts = dict.fromkeys(ids, 0)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_stream(path, cid, counts, stop)) for cid in ids]
    await asyncio.sleep(seconds)
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return len(ids), sum(counts.values())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m console.sim.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", type=int, default=100, help="containers (all running), one stream each")
    p.add_argument("--seconds", type=float, default=20.0)
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
            idle0 = _cpu_seconds(proc.pid)
            time.sleep(5)
            idle = (_cpu_seconds(proc.pid) - idle0) / 5
            t0 = time.monotonic()
            cpu0 = _cpu_seconds(proc.pid)
            streams, lines = asyncio.run(_run(sock, args.seconds))
            elapsed = time.monotonic() - t0
            busy = (_cpu_seconds(proc.pid) - cpu0) / elapsed
            print(f"node idle: {idle * 100:.1f}% of one core")
            print(f"{streams} stats streams for {elapsed:.1f} s: {lines} samples ({lines / elapsed:.0f}/s), "
                  f"node CPU {busy * 100:.1f}% of one core ({busy / max(lines / elapsed, 1) * 1e6:.0f} us/sample), "
                  f"RSS {_rss(proc.pid) / 2**20:.0f} MiB")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
