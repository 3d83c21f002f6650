"""Client CPU per stats sample and node-side CPU: Berth vs `docker stats`, same daemon, same containers.

    python3 -m bench.stats_vs_docker [--containers 100] [--seconds 20]

Starts a private real dockerd (the test lab), runs N idle busybox containers,
then watches them for the same wall time with `docker stats` and with Berth's
poller, one after the other. Prints a table with ratios. Needs root and dockerd.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.procstat import cpu_of

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "lab"))
from dockerlab import BUSYBOX_REF, Lab, lab_available  # noqa: E402


def node_procs(node) -> list[psutil.Process]:  # type: ignore[no-untyped-def]
    procs = [psutil.Process(node.pid)]
    pidfile = node.dir / "exec" / "containerd" / "containerd.pid"
    if pidfile.exists():
        procs.append(psutil.Process(int(pidfile.read_text().strip())))
    return procs


def watch_with_docker_stats(url: str, seconds: float, warmup: float, node: list[psutil.Process]) -> dict:
    proc = subprocess.Popen(["docker", "-H", url, "stats", "--format", "{{.Name}} {{.CPUPerc}} {{.MemUsage}}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    p = psutil.Process(proc.pid)
    time.sleep(warmup)
    c0, n0, t0 = cpu_of([p]), cpu_of(node), time.monotonic()
    time.sleep(seconds)
    c1, n1, t1 = cpu_of([p]), cpu_of(node), time.monotonic()
    proc.terminate()
    proc.wait(10)
    return {"cpu_s": c1 - c0, "node_cpu_s": n1 - n0, "wall_s": t1 - t0}


def watch_with_both(url: str, inventory: Path, seconds: float) -> dict:
    """Both clients subscribed at once get the very same samples from the daemon's collector, so
    their CPU over one window gives the per-sample ratio with no assumption about the sample rate."""
    peer = subprocess.Popen(["docker", "-H", url, "stats", "--format", "{{.Name}} {{.CPUPerc}} {{.MemUsage}}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    p = psutil.Process(peer.pid)
    probe = subprocess.Popen([sys.executable, "-m", "bench.probe", "--inventory", str(inventory),
                              "--seconds", str(seconds)], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parent.parent)
    assert probe.stdout is not None
    probe.stdout.readline()  # {"event": "ready"}
    c0 = cpu_of([p])
    result = json.loads(probe.stdout.readline())
    result["peer_cpu_s"] = cpu_of([p]) - c0
    probe.wait(60)
    peer.terminate()
    peer.wait(10)
    return result


def watch_with_berth(inventory: Path, seconds: float, node: list[psutil.Process]) -> dict:
    n0 = cpu_of(node)
    proc = subprocess.run([sys.executable, "-m", "bench.probe", "--inventory", str(inventory),
                           "--seconds", str(seconds)], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parent.parent)
    n1 = cpu_of(node)
    out = json.loads(proc.stdout.splitlines()[-1])
    # node CPU over the whole probe includes its warm-up: scale to the measured window
    total_wall = out["wall_s"] + out["ready_s"]
    out["node_cpu_s"] = (n1 - n0) * out["wall_s"] / total_wall if total_wall else n1 - n0
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--containers", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    reason = lab_available()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    with Lab(1) as lab, tempfile.TemporaryDirectory() as tmp:
        lab.import_image()
        node = lab.nodes[0]
        client = node.client()
        t = time.monotonic()
        for i in range(args.containers):
            client.containers.run(BUSYBOX_REF, ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"],
                                  name=f"idle-{i:03d}", detach=True, labels={"tenant": f"t{i % 7}"})
        print(f"started {args.containers} containers in {time.monotonic() - t:.1f}s", file=sys.stderr)
        inventory = lab.write_inventory(Path(tmp) / "inventory.toml")
        procs = node_procs(node)
        time.sleep(3)
        idle0 = cpu_of(procs)
        time.sleep(args.seconds / 2)
        idle = (cpu_of(procs) - idle0) / (args.seconds / 2)
        docker = watch_with_docker_stats(node.url, args.seconds, warmup=3.0, node=procs)
        berth = watch_with_berth(inventory, args.seconds, procs)
        both = watch_with_both(node.url, inventory, args.seconds)
    n = args.containers
    per_sample = both["cpu_s"] / both["samples"] * 1e6
    rows = [
        ("client CPU per sample (µs), both watching at once", both["peer_cpu_s"] / both["samples"] * 1e6, per_sample),
        ("client CPU (cores)", docker["cpu_s"] / docker["wall_s"], berth["cpu_s"] / berth["wall_s"]),
        ("node dockerd+containerd (cores, idle baseline subtracted)",
         docker["node_cpu_s"] / docker["wall_s"] - idle, berth["node_cpu_s"] / berth["wall_s"] - idle),
        ("samples per second received (berth counted)", berth["samples"] / berth["wall_s"],
         berth["samples"] / berth["wall_s"]),
    ]
    print(f"\nstats path, {n} running containers on one real dockerd, {args.seconds:g}s windows "
          f"(idle node baseline {idle:.3f} cores)")
    print(f"{'metric':58} {'docker stats':>14} {'berth':>10} {'berth/docker':>13}")
    for name, d, b in rows:
        ratio = b / d if d else float("nan")
        print(f"{name:58} {d:14.3f} {b:10.3f} {ratio:13.2f}")
    print(f"berth RSS {berth['rss'] / 2**20:.0f} MiB; first complete round {berth['ready_s']:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
