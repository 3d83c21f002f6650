"""Client CPU per stats sample and node-side CPU: Berth vs `docker stats`, same daemon, same containers.

    python3 -m bench.stats_vs_docker [--containers 100] [--seconds 20]

Starts a private real dockerd (the test lab), runs N busybox containers (a few
of them busy), then watches them for the same wall time with `docker stats`, with
Berth's poller at full rate (every container streamed, the same work as docker
stats), with Berth's default idle cadence (idle containers sampled every
stats_idle_interval), and with both clients at once on the very same samples.
Prints a table with ratios. Needs root and dockerd.
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


def run_probe(inventory: Path, seconds: float, node: list[psutil.Process], *, warmup: float = 0.0,
              peer: psutil.Process | None = None) -> dict:
    """Berth's poller (bench/probe.py) in its own process; the node's CPU, and a peer's when given,
    over exactly the probe's measured window (it says "ready" when the window opens)."""
    probe = subprocess.Popen([sys.executable, "-m", "bench.probe", "--inventory", str(inventory),
                              "--seconds", str(seconds), "--warmup", str(warmup)], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parent.parent)
    assert probe.stdout is not None
    probe.stdout.readline()  # {"event": "ready"}
    n0, p0 = cpu_of(node), cpu_of([peer]) if peer else 0.0
    result = json.loads(probe.stdout.readline())
    result["node_cpu_s"] = cpu_of(node) - n0
    if peer is not None:
        result["peer_cpu_s"] = cpu_of([peer]) - p0
    probe.wait(60)
    return result


def watch_with_both(url: str, inventory: Path, seconds: float, node: list[psutil.Process]) -> dict:
    """Both clients subscribed at once get the very same samples from the daemon's collector, so
    their CPU over one window gives the per-sample ratio with no assumption about the sample rate."""
    peer = subprocess.Popen(["docker", "-H", url, "stats", "--format", "{{.Name}} {{.CPUPerc}} {{.MemUsage}}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return run_probe(inventory, seconds, node, peer=psutil.Process(peer.pid))
    finally:
        peer.terminate()
        peer.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--containers", type=int, default=100)
    ap.add_argument("--busy", type=int, default=10, help="of which this many burn 2 %% of a core each")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--idle-interval", type=float, default=5.0, help="Berth's stats_idle_interval for the default run")
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
            busy = i < args.busy
            client.containers.run(BUSYBOX_REF, ["sh", "-c", "while :; do :; done" if busy else
                                                "trap 'exit 0' TERM; while :; do sleep 1; done"],
                                  name=f"{'busy' if busy else 'idle'}-{i:03d}", detach=True,
                                  labels={"tenant": f"t{i % 7}"}, nano_cpus=20_000_000 if busy else 0)
        print(f"started {args.containers} containers ({args.busy} busy) in {time.monotonic() - t:.1f}s",
              file=sys.stderr)
        # stats_idle_interval <= 1: every container streamed, the same work as docker stats
        full = lab.write_inventory(Path(tmp) / "full.toml", node_settings={"stats_idle_interval": 1})
        default = lab.write_inventory(Path(tmp) / "default.toml",
                                      node_settings={"stats_idle_interval": args.idle_interval})
        procs = node_procs(node)
        time.sleep(3)
        idle0 = cpu_of(procs)
        time.sleep(args.seconds / 2)
        idle = (cpu_of(procs) - idle0) / (args.seconds / 2)
        docker = watch_with_docker_stats(node.url, args.seconds, warmup=3.0, node=procs)
        berth_full = run_probe(full, args.seconds, procs)
        # the cadence settles after 10 idle samples and one interval
        berth = run_probe(default, args.seconds, procs, warmup=12.0 + 2 * args.idle_interval)
        both = watch_with_both(node.url, full, args.seconds, procs)
    n = args.containers

    def cores(run: dict, key: str = "cpu_s") -> float:
        return run[key] / run["wall_s"]

    docker_node = docker["node_cpu_s"] / docker["wall_s"] - idle
    rows = [
        ("client CPU per sample (µs), both on the same samples", "docker stats", "berth, full rate",
         both["peer_cpu_s"] / both["samples"] * 1e6, both["cpu_s"] / both["samples"] * 1e6),
        ("client CPU (cores)", "docker stats", "berth, full rate", cores(docker), cores(berth_full)),
        ("client CPU (cores)", "docker stats", "berth, default", cores(docker), cores(berth)),
        ("node dockerd+containerd (cores, minus idle baseline)", "docker stats", "berth, full rate",
         docker_node, cores(berth_full, "node_cpu_s") - idle),
        ("node dockerd+containerd (cores, minus idle baseline)", "docker stats", "berth, default",
         docker_node, cores(berth, "node_cpu_s") - idle),
        ("stats samples per second received", "(same)", "berth, full rate",
         berth_full["samples"] / berth_full["wall_s"], berth_full["samples"] / berth_full["wall_s"]),
        ("stats samples per second received", "(same)", "berth, default",
         berth_full["samples"] / berth_full["wall_s"], berth["samples"] / berth["wall_s"]),
    ]
    print(f"\nstats path, {n} running containers ({args.busy} busy) on one real dockerd, {args.seconds:g}s windows "
          f"(idle node baseline {idle:.3f} cores); berth default = stats_idle_interval {args.idle_interval:g}s")
    print(f"{'metric':54} {'peer':>13} {'value':>9} {'berth':>17} {'value':>9} {'ratio':>6}")
    for name, peer, who, d, b in rows:
        ratio = b / d if d else float("nan")
        print(f"{name:54} {peer:>13} {d:9.3f} {who:>17} {b:9.3f} {ratio:6.2f}")
    print(f"berth RSS {berth['rss'] / 2**20:.0f} MiB; first complete round {berth['ready_s']:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
