"""Berth's /metrics at fleet scale: CPU per scrape and body size, simulated fleet.

    python3 -m bench.metrics_scale [--nodes 100] [--containers-per-node 100] [--scrapes 20] [--seed 1]

Starts `SimFleet` (one process per node serving the real Engine API on a unix socket, flapping
off), then `berth metrics` on it as a child process, waits until every node's CPU total is in
the exposition (a complete stats round), and scrapes it `--scrapes` times, half as Prometheus
does (gzip) and half plain, one every `--gap` seconds. Per scrape it reports:

* Berth CPU per scrape: the serving thread's own CPU time (rendering and compressing), which
  the exporter counts itself (`berth_exposition_cpu_seconds_total`); and, as a cross-check, the
  whole process's extra CPU over the scrape window compared with an equal window without scrapes
  (noisy on a shared machine);
* wall time per scrape as the client sees it;
* body size, plain and gzipped, and the number of samples.

Then (unless --no-readback) it starts Debian's prometheus scraping the exporter every 5 s and
times what `berth --prometheus` does per refresh: the reader's queries (how many, the first complete
snapshot's wall time against the 2 s target, Berth's CPU) and Prometheus' own evaluation time per
query (the API's stats). The console draws that snapshot as it draws a local one (bench/fleet_scale.py).

For context it also renders the same kind of fleet in-process through prometheus-client's generic
path (`generate_latest` over `SnapshotCollector`), which Berth does not use for serving. Prints a
table against the targets; asserts nothing.
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
TARGET_CPU_MS = 150.0


def cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def fetch(url: str, gz: bool) -> tuple[bytes, float]:
    req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"} if gz else {})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as resp:
        body = resp.read()
    return body, time.perf_counter() - t0


def sample_value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def child_target(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc


def measure_readback(target: str, total: int, args: argparse.Namespace) -> dict[str, Any]:
    """`berth --prometheus`'s read at this size: a real Prometheus scraping the exporter, then the
    reader's full set of queries timed end to end, with the server's own evaluation time per query."""
    import asyncio
    import tempfile

    sys.path.insert(0, str(ROOT / "tests" / "lab"))
    from promlab import PromServer, wait_for

    from console.metrics.promql import PromReader

    with tempfile.TemporaryDirectory(prefix="berth-bench-prom-") as tmp:
        prom = PromServer(Path(tmp), [target], scrape_interval="10s")
        try:
            print("  readback: waiting for Prometheus to hold the whole fleet…", file=sys.stderr, flush=True)
            try:
                wait_for(lambda: prom.query(f"count(berth_container_info) >= {total}"), 300, "the fleet scraped")
            except AssertionError as exc:
                scrape = {q: prom.query(q) for q in ("up", "scrape_duration_seconds", "scrape_samples_scraped")}
                return {"error": f"{exc}; {scrape}"}

            counts: list[int] = []

            async def reads() -> list[tuple[float, float, dict[str, float], int]]:
                reader = PromReader(prom.url)
                out = []
                try:
                    for _ in range(3):
                        t0, c0 = time.perf_counter(), time.process_time()
                        snap = await reader.snapshot()
                        out.append((time.perf_counter() - t0, time.process_time() - c0, dict(reader.last_cost),
                                    len(snap.containers)))
                        counts.append(reader.queries)
                finally:
                    await reader.aclose()
                return out

            runs = asyncio.run(reads())
        finally:
            prom.close()
    first_wall, first_cpu, costs, seen = runs[0]
    return {"error": None, "queries": counts[0], "first_wall": first_wall, "first_cpu": first_cpu,
            "wall_p50": statistics.median(r[0] for r in runs), "cpu_p50": statistics.median(r[1] for r in runs),
            "server_total": sum(costs.values()), "server_max": max(costs.items(), key=lambda kv: kv[1]),
            "containers": seen}


def library_path_ms(containers: int, nodes: int) -> float:
    """ms of CPU for prometheus-client's generic rendering of a fleet this size (in this process)."""
    sys.path.insert(0, str(ROOT / "tests" / "ui"))
    import fleetdata
    from prometheus_client import generate_latest

    from console.metrics.collector import SnapshotCollector
    from console.metrics.exposition import build_registry

    snap = fleetdata.big_fleet(containers, nodes)
    registry = build_registry(SnapshotCollector(lambda: snap, clock=lambda: fleetdata.NOW))
    runs = []
    for _ in range(3):
        t0 = time.process_time()
        generate_latest(registry)
        runs.append(time.process_time() - t0)
    return min(runs) * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--containers-per-node", type=int, default=100)
    ap.add_argument("--scrapes", type=int, default=20)
    ap.add_argument("--gap", type=float, default=1.0, help="seconds between scrapes (default 1)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ready-timeout", type=float, default=180.0)
    ap.add_argument("--no-readback", dest="readback", action="store_false",
                    help="skip the `berth --prometheus` read through a real Prometheus (Debian's prometheus)")
    args = ap.parse_args(argv)

    from console.sim.fleet import SimFleet

    total = args.nodes * args.containers_per_node
    print(f"fleet {args.nodes}x{args.containers_per_node}: starting the sim…", file=sys.stderr, flush=True)
    with SimFleet(args.nodes, args.containers_per_node, args.seed, flap=None) as sim:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        child = subprocess.Popen([sys.executable, "-m", "console", "metrics", "--inventory", str(sim.inventory_path),
                                  "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        try:
            assert child.stdout is not None
            banner = child.stdout.readline()
            url = banner.split("serving ", 1)[1].split()[0]
            proc = psutil.Process(child.pid)
            print(f"  berth metrics at {url}; waiting for a complete round…", file=sys.stderr, flush=True)
            t0 = time.monotonic()
            while True:
                body, _ = fetch(url, gz=False)
                text = body.decode()
                if text.count("berth_node_cpu_usage_cores{") >= args.nodes:
                    break
                if time.monotonic() - t0 > args.ready_timeout:
                    print(f"not complete within {args.ready_timeout:g}s", file=sys.stderr)
                    return 1
                time.sleep(1.0)
            ready = time.monotonic() - t0
            time.sleep(3.0)  # let the start-up burst settle before measuring

            # a window without scrapes, as long as the scrape window will be
            window = args.scrapes * args.gap
            c0, w0 = cpu_s(proc), time.monotonic()
            time.sleep(window)
            idle_rate = (cpu_s(proc) - c0) / (time.monotonic() - w0)

            # Each body carries the exporter's counters as of the scrape before it, so consecutive
            # bodies give every scrape's own CPU; a scrape counts when its body had the whole fleet.
            bodies: list[tuple[bool, bytes, float]] = []
            c0, w0 = cpu_s(proc), time.monotonic()
            for i in range(args.scrapes + 1):
                gz = i % 2 == 0
                body, wall = fetch(url, gz)
                bodies.append((gz, gzip.decompress(body) if gz else body, wall))
                if i == 0:
                    sizes_gz = len(body)
                if i == 1:
                    sizes_plain = len(body)
                time.sleep(max(0.0, w0 + (i + 1) * args.gap - time.monotonic()))
            busy = cpu_s(proc) - c0
            span = time.monotonic() - w0
            readback = measure_readback(child_target(url), total, args) if args.readback else None
        finally:
            child.terminate()
            child.wait(20)
    texts = [(gz, b.decode(), wall) for gz, b, wall in bodies]
    per: list[tuple[float, int, int, bool, float]] = []  # (cpu ms, containers with CPU, fresh nodes, gz, wall)
    for (gz, text, wall), (_, nxt, _) in zip(texts, texts[1:], strict=False):
        cpu = (sample_value(nxt, "berth_exposition_cpu_seconds_total")
               - sample_value(text, "berth_exposition_cpu_seconds_total")) * 1000
        per.append((cpu, text.count("berth_container_cpu_usage_cores{"), text.count("berth_node_cpus{"), gz, wall))
    full = [p for p in per if p[2] == args.nodes]
    chosen = full or per
    per_scrape_ms = statistics.median(p[0] for p in chosen)
    worst_ms = max(p[0] for p in chosen)
    extra_ms = (busy - idle_rate * span) / (args.scrapes + 1) * 1000
    after = next((texts[i][1] for i in range(len(per) - 1, -1, -1) if per[i][2] == args.nodes), texts[-2][1])
    samples = sum(1 for line in after.splitlines() if line and not line.startswith("#"))
    plain = len(after.encode())
    zipped = len(gzip.compress(after.encode(), compresslevel=1))
    walls = {True: [p[4] for p in chosen if p[3]] or [0.0], False: [p[4] for p in chosen if not p[3]] or [0.0]}
    fresh_note = f"{len(full)}/{len(per)} scrapes had every node fresh"
    lib_ms = library_path_ms(total, args.nodes)

    print(f"\n/metrics at {total:,} simulated containers ({args.nodes} nodes), {args.scrapes} scrapes "
          f"{args.gap:g} s apart on a {psutil.cpu_count()}-core machine; complete round after {ready:.1f} s\n")
    rows = [
        ("Berth CPU per scrape, serving thread (render + gzip), p50", f"{per_scrape_ms:.0f} ms",
         f"<= {TARGET_CPU_MS:g} ms", "ok" if per_scrape_ms <= TARGET_CPU_MS else "OVER"),
        ("  worst scrape", f"{worst_ms:.0f} ms", "", ""),
        ("  scrapes with the whole fleet in them", fresh_note, "", ""),
        ("  whole process, extra over a window without scrapes", f"{extra_ms:.0f} ms", "", ""),
        ("  poller alone meanwhile (no scrapes)", f"{idle_rate:.3f} cores", "", ""),
        ("wall per scrape, gzip / plain (p50)", f"{statistics.median(walls[True]) * 1000:.0f} / "
         f"{statistics.median(walls[False]) * 1000:.0f} ms", "", ""),
        ("body, plain / gzip", f"{plain / 2**20:.1f} / {zipped / 2**20:.2f} MiB", "", ""),
        ("  as served (first two scrapes), gzip / plain", f"{sizes_gz / 2**20:.2f} / {sizes_plain / 2**20:.1f} MiB",
         "", ""),
        ("samples per scrape", f"{samples:,}", "", ""),
        ("prometheus-client generic rendering, same size (not used)", f"{lib_ms:.0f} ms", "", ""),
    ]
    if readback is not None and readback["error"]:
        rows.append(("berth --prometheus: not measured", readback["error"][:300], "", ""))
    elif readback is not None:
        name, cost = readback["server_max"]
        rows += [
            (f"berth --prometheus: first complete snapshot ({readback['queries']} queries, concurrent)",
             f"{readback['first_wall']:.2f} s", "<= 2 s", "ok" if readback["first_wall"] <= 2 else "OVER"),
            ("  containers read back", f"{readback['containers']:,}", "", ""),
            ("  later reads, wall / Berth CPU (p50)", f"{readback['wall_p50']:.2f} / {readback['cpu_p50']:.2f} s",
             "", ""),
            ("  Prometheus evaluation, all queries / slowest", f"{readback['server_total'] * 1000:.0f} / "
             f"{cost * 1000:.0f} ms ({name})", "", ""),
        ]
    width = max(len(r[0]) for r in rows)
    for name, value, target, verdict in rows:
        print(f"  {name:<{width}}  {value:>16}  {target:>10}  {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
