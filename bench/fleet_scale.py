"""Berth at fleet scale: poller rate, CPU and memory, first complete screen and key latency, simulated fleet.

    python3 -m bench.fleet_scale [--nodes 10] [--containers-per-node 100] [--seconds 30] [--seed 1]
    python3 -m bench.fleet_scale --fleet 10x100 --fleet 20x100 --fleet 40x50   # one column per fleet

For each fleet: start `SimFleet` (one process per node serving the real Engine API on a unix
socket, flapping off), then run two Berth processes against it, one after the other:

* headless: the poller alone (what bench/probe.py does, plus RSS sampled through the window):
  samples per second, CPU, RSS and its growth, time to the first complete round;
* the console: BerthApp under Pilot at 160x48, fed by a real FleetThread wired as `run_app`
  wires it: time from app start to the first frame showing every node up with every running
  container sampled, CPU and RSS while live, then keys pressed during live updates.

Key latency is the wall time from posting a key until the first frame that shows its effect.
Frames are seen with the spy on `App._display` from tests/ui/measure_ui.py; the spy also
renders the frame to terminal bytes (which a headless app skips), and records a fingerprint
of the view state (screen, pane, focus, filter line, sort, row under the cursor) so a frame
drawn for a snapshot that arrived just before the key is not taken for the key's frame.
Keys are spaced by a random 0-300 ms so they land at every phase of the 1 Hz updates.

The sim's CPU (sum over its node processes) and the whole machine's are measured over the
same windows, so the reader can tell Berth's limits from a saturated machine. Prints a
table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

from bench import keyframes
from bench.procstat import cpu_of

ROOT = Path(__file__).resolve().parent.parent
SIZE = (160, 48)
MiB = 2**20


def emit(out: IO[str], **doc: Any) -> None:
    out.write(json.dumps(doc) + "\n")
    out.flush()


# ---------------------------------------------------------------------- child: headless poller


async def headless(inventory: str, seconds: float, rss_points: int, ready_timeout: float, out: IO[str]) -> None:
    from console.config import load_inventory
    from console.fleet.poller import Fleet, NodeWatcher

    class CountingWatcher(NodeWatcher):
        samples = 0

        def _apply_stats(self, cid, doc):  # type: ignore[no-untyped-def]
            CountingWatcher.samples += 1
            super()._apply_stats(cid, doc)

    me = psutil.Process()
    inv = load_inventory(inventory)
    fleet = Fleet(inv, watcher_factory=CountingWatcher)
    emit(out, event="mark", name="start")
    async with fleet:
        first = time.monotonic()
        snap = await fleet.wait_complete(ready_timeout)
        ready = time.monotonic() - first
        emit(out, event="mark", name="window")
        t0, c0, s0 = time.monotonic(), me.cpu_times(), CountingWatcher.samples
        rss = [(0.0, me.memory_info().rss)]
        for i in range(1, rss_points + 1):
            await asyncio.sleep(t0 + seconds * i / rss_points - time.monotonic())
            rss.append((time.monotonic() - t0, me.memory_info().rss))
        t1, c1, s1 = time.monotonic(), me.cpu_times(), CountingWatcher.samples
        emit(out, event="mark", name="window_end")
    emit(out, event="result", cpu_s=(c1.user - c0.user) + (c1.system - c0.system), wall_s=t1 - t0,
         samples=s1 - s0, ready_s=ready, running=snap.running, complete=snap.complete,
         containers=len(snap.containers), rss=rss)


# ---------------------------------------------------------------------- child: the console under Pilot


def key_script(rounds: int, downs: int, text: str) -> list[str]:
    """Pane switch, sort, a live filter typed and cleared, cursor moves, pane switches."""
    keys: list[str] = []
    for _ in range(rounds):
        keys += ["2", "C", "slash", *text, "escape", "escape", *["down"] * downs, "1", "3"]
    return keys


async def console(inventory: str, idle: float, rounds: int, downs: int, text: str, seed: int,
                  started: float, ready_timeout: float, rss_points: int, out: IO[str]) -> None:
    t_import = time.perf_counter()
    from textual._compositor import CompositorUpdate
    from textual.widgets import Input

    from console.config import load_inventory
    from console.ui.app import connect_app

    imported = time.perf_counter() - t_import
    me = psutil.Process()
    inv = load_inventory(inventory)
    emit(out, event="mark", name="start")
    t_app = time.perf_counter()
    app = connect_app(argparse.Namespace(read_only=False, theme=None, noc=False), inv)  # exactly as run_app
    feed = app.feed
    assert feed is not None
    feed.start()

    frames: list[tuple[float, tuple[Any, ...]]] = []
    complete_at: list[float] = []
    display = app._display

    def view_state() -> tuple[Any, ...]:
        return keyframes.view_state(app)

    def spy(screen, renderable):  # type: ignore[no-untyped-def]
        if isinstance(renderable, CompositorUpdate):
            renderable.render_segments(app.console)  # the bytes a terminal would get
        now = time.perf_counter()
        frames.append((now, view_state()))
        snap = app.snapshot
        if not complete_at and snap is not None and snap.complete and app.fleet.is_mounted \
                and all(n.up for n in snap.nodes):
            complete_at.append(now)
        return display(screen, renderable)

    app._display = spy  # type: ignore[method-assign]
    latencies: dict[str, list[float]] = {}
    try:
        async with app.run_test(size=SIZE) as pilot:
            app.fleet.query_one("#filter", Input).cursor_blink = False  # no unrelated frames while typing
            deadline = time.perf_counter() + ready_timeout
            while not complete_at and time.perf_counter() < deadline:
                await asyncio.sleep(0.02)
            first_screen = complete_at[0] - t_app if complete_at else None
            snap = app.snapshot

            emit(out, event="mark", name="window")
            t0, c0, r0, n0 = time.perf_counter(), me.cpu_times(), me.memory_info().rss, len(frames)
            seq0 = app.snapshot.seq if app.snapshot else 0
            rss = [(0.0, r0)]
            for i in range(1, rss_points + 1):
                await asyncio.sleep(t0 + idle * i / rss_points - time.perf_counter())
                rss.append((time.perf_counter() - t0, me.memory_info().rss))
            t1, c1, r1 = time.perf_counter(), me.cpu_times(), me.memory_info().rss
            live_frames = len(frames) - n0
            applied = (app.snapshot.seq if app.snapshot else 0) - seq0
            emit(out, event="mark", name="window_end")

            rng = random.Random(seed)
            keyname = {"-": "minus", ":": "colon", " ": "space"}
            for key in key_script(rounds, downs, text):
                await asyncio.sleep(rng.uniform(0.0, 0.3))  # land keys at any phase of the 1 Hz updates
                k = keyname.get(key, key)
                t = time.perf_counter()
                await pilot.press(k)
                await pilot.pause()
                want = view_state()
                later = [f for f, state in frames if f > t and state == want]
                kind = "type" if len(key) == 1 and key.islower() else key
                latencies.setdefault(kind, []).append((later[0] if later else time.perf_counter()) - t)
            rss_end = me.memory_info().rss
    finally:
        feed.stop()
    emit(out, event="result", imported_s=imported, first_screen_s=first_screen,
         since_process_s=(complete_at[0] - started) if complete_at else None,
         running=snap.running if snap else 0, idle_cpu_s=(c1.user - c0.user) + (c1.system - c0.system),
         idle_wall_s=t1 - t0, rss0=r0, rss1=r1, rss_end=rss_end, rss=rss, live_frames=live_frames,
         snapshots_applied=applied, latencies=latencies)


# ---------------------------------------------------------------------- parent: the fleet and the table


def machine_busy() -> float:
    """CPU seconds every core has spent busy (guest time is already inside user and nice)."""
    t = psutil.cpu_times()
    return float(sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal")))


@dataclass
class Window:
    wall_s: float
    berth: float  # cores: the Berth child process
    sim: float  # cores: all sim node processes
    machine: float  # cores: every process on the machine


@dataclass
class Child:
    result: dict[str, Any]
    startup: Window  # from just before the fleet (or app) starts to the first complete round (or screen)
    window: Window  # the measured steady window


def run_child(args: list[str], sim: list[psutil.Process], timeout: float) -> Child:
    """Run `python -m bench.fleet_scale --child ...`; at each of its marks, read its CPU, the sim's and the machine's."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.fleet_scale", *args],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    me = psutil.Process(proc.pid)
    marks: dict[str, tuple[float, float, float, float]] = {}
    result: dict[str, Any] = {}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            doc = json.loads(line)
            if doc["event"] == "mark":
                marks[doc["name"]] = (time.monotonic(), cpu_of([me]), cpu_of(sim), machine_busy())
            elif doc["event"] == "result":
                result = doc
        proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.terminate()  # our own child, by its pid
            proc.wait(10)
    if proc.returncode != 0 or not result:
        raise RuntimeError(f"{' '.join(args[:2])} child failed with exit code {proc.returncode}")

    def between(a: str, b: str) -> Window:
        (ta, *xa), (tb, *xb) = marks[a], marks[b]
        wall = tb - ta
        berth, sim_, machine = ((y - x) / wall for x, y in zip(xa, xb, strict=True))
        return Window(wall, berth, sim_, machine)

    return Child(result, between("start", "window"), between("window", "window_end"))


@dataclass
class Run:
    nodes: int
    per_node: int
    sim_up_s: float  # SimFleet start: every node process answering /_ping
    sim_rss: int  # bytes, summed over the node processes, after start-up
    sim_idle: float  # cores: the sim ticking its containers with no client
    headless: Child
    ui: Child
    soak: Child | None = None
    notes: list[str] = field(default_factory=list)


def measure(nodes: int, per_node: int, args: argparse.Namespace) -> Run:
    from console.sim.fleet import SimFleet

    print(f"fleet {nodes}x{per_node}: starting the sim…", file=sys.stderr, flush=True)
    t = time.monotonic()
    with SimFleet(nodes, per_node, args.seed, flap=None, cgroup=args.cgroup) as sim:  # flap=None: nodes stay up
        up = time.monotonic() - t
        procs = [psutil.Process(p.pid) for p in sim.procs.values()]
        inv = str(sim.inventory_path)
        c0, t0 = cpu_of(procs), time.monotonic()
        time.sleep(5.0)
        idle = (cpu_of(procs) - c0) / (time.monotonic() - t0)
        rss = sum(p.memory_info().rss for p in procs)
        print(f"  sim up in {up:.1f}s, {rss / MiB:.0f} MB, idle {idle:.3f} cores; headless poller for "
              f"{args.seconds:g}s…", file=sys.stderr, flush=True)
        ready = str(args.ready_timeout)
        head = run_child(["--child", "headless", "--inventory", inv, "--seconds", str(args.seconds),
                          "--ready-timeout", ready], procs, timeout=args.seconds + args.ready_timeout + 120)
        print("  console under Pilot…", file=sys.stderr, flush=True)
        ui = run_child(["--child", "console", "--inventory", inv, "--idle", str(args.idle),
                        "--rounds", str(args.rounds), "--seed", str(args.seed), "--ready-timeout", ready], procs,
                       timeout=args.idle + 60 * args.rounds + args.ready_timeout + 120)
        soak = None
        if args.soak:
            print(f"  console soak, live for {args.soak:g}s, no keys…", file=sys.stderr, flush=True)
            soak = run_child(["--child", "console", "--inventory", inv, "--idle", str(args.soak), "--rounds", "0",
                              "--seed", str(args.seed), "--ready-timeout", ready, "--rss-points", "20"], procs,
                             timeout=args.soak + args.ready_timeout + 120)
        dead = sim.dead_nodes()
    run = Run(nodes, per_node, up, rss, idle, head, ui, soak)
    if not head.result["complete"]:
        run.notes.append(f"{nodes}x{per_node}: the poller had no complete round within {args.ready_timeout:g} s")
    for child, what in ((ui, "console"), (soak, "soak console")):
        if child is not None and child.result["first_screen_s"] is None:
            run.notes.append(f"{nodes}x{per_node}: the {what} showed no complete screen within "
                             f"{args.ready_timeout:g} s")
    if dead:
        run.notes.append(f"{nodes}x{per_node}: sim nodes exited during the run: {', '.join(dead)}")
    return run


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def table(runs: list[Run], seconds: float, idle: float, soak: float, cgroup: str) -> None:
    cores = psutil.cpu_count() or 1
    rows: list[tuple[str, list[str], str]] = []

    def row(name: str, fmt: str, values: list[Any], target: str = "") -> None:
        rows.append((name, [("n/a" if v is None else format(v, fmt)) for v in values], target))

    h = [r.headless.result for r in runs]
    u = [r.ui.result for r in runs]
    row("sim: start-up, all nodes answering (s)", ".1f", [r.sim_up_s for r in runs])
    row("sim: RSS, all node processes (MB)", ".0f", [r.sim_rss / MiB for r in runs])
    row("sim: CPU idle, no client (cores)", ".3f", [r.sim_idle for r in runs])
    row("sim: CPU serving the poller (cores)", ".3f", [r.headless.window.sim for r in runs], "<= 0.3")
    row("  per sample served (µs)", ".1f", [r.headless.window.sim / max(1e-9, x["samples"] / x["wall_s"]) * 1e6
                                           for r, x in zip(runs, h, strict=True)], "<= 30")
    row("  per sample served, net of idle (µs)", ".1f",
        [(r.headless.window.sim - r.sim_idle) / max(1e-9, x["samples"] / x["wall_s"]) * 1e6
         for r, x in zip(runs, h, strict=True)])
    row("containers running (of nodes x containers)", "d", [x["running"] for x in h])
    row("samples per second (headless poller)", ".0f", [x["samples"] / x["wall_s"] for x in h])
    row("  per running container (Hz)", ".2f", [x["samples"] / x["wall_s"] / max(1, x["running"]) for x in h],
        "1 Hz")
    row("Berth CPU, poller alone (cores)", ".3f", [x["cpu_s"] / x["wall_s"] for x in h], "<= 1 at 10,000")
    row("  per sample (µs)", ".0f", [x["cpu_s"] / max(1, x["samples"]) * 1e6 for x in h])
    row("RSS, poller alone (MB)", ".0f", [x["rss"][-1][1] / MiB for x in h], "<= 300")
    row(f"RSS growth over {seconds:g}s, poller (MB)", "+.1f", [(x["rss"][-1][1] - x["rss"][0][1]) / MiB for x in h],
        "0")
    row("first complete round, poller (s)", ".2f", [x["ready_s"] for x in h], "<= 2")
    row("  Berth CPU spent to get there (CPU s)", ".2f", [r.headless.startup.berth * r.headless.startup.wall_s
                                                          for r in runs])
    row("  per running container (ms)", ".2f", [r.headless.startup.berth * r.headless.startup.wall_s
                                               / max(1, x["running"]) * 1e3 for r, x in zip(runs, h, strict=True)])
    row("first complete screen, from app start (s)", ".2f", [x["first_screen_s"] for x in u], "<= 2")
    row("  from process start, imports included (s)", ".2f", [x["since_process_s"] for x in u])
    row("console CPU while live, no keys (cores)", ".3f", [x["idle_cpu_s"] / x["idle_wall_s"] for x in u])
    row("  snapshots applied per second", ".2f", [x["snapshots_applied"] / x["idle_wall_s"] for x in u])
    row("RSS, console = poller + UI (MB)", ".0f", [x["rss_end"] / MiB for x in u], "<= 300")
    row(f"RSS growth over {idle:g}s live, no keys, console (MB)", "+.1f", [(x["rss1"] - x["rss0"]) / MiB for x in u],
        "0")
    row("  and by the end of the keys (MB)", "+.1f", [(x["rss_end"] - x["rss0"]) / MiB for x in u])
    if soak:
        s_ = [r.soak.result if r.soak else None for r in runs]
        row(f"RSS growth over {soak:g}s live soak, console (MB)", "s",
            [None if x is None else f"{(x['rss1'] - x['rss0']) / MiB:+.1f}" for x in s_], "0")
        row("  RSS at soak start / lowest / highest / end (MB)", "s",
            [None if x is None else "/".join(f"{v / MiB:.0f}" for v in (
                x["rss0"], min(r for _, r in x["rss"]), max(r for _, r in x["rss"]), x["rss1"])) for x in s_])
        row("  console CPU over the soak (cores)", "s",
            [None if x is None else f"{x['idle_cpu_s'] / x['idle_wall_s']:.3f}" for x in s_])
    lat = [[v for vs in x["latencies"].values() for v in vs] for x in u]
    row("key -> next frame p50 (ms)", ".0f", [statistics.median(v) * 1e3 if v else None for v in lat])
    row("key -> next frame p95 (ms)", ".0f", [pct(v, 0.95) * 1e3 if v else None for v in lat], "<= 50")
    row("  keys measured", "d", [len(v) for v in lat])
    for kind in ("type", "down", "2", "C", "escape", "1", "3", "slash"):
        row(f"  '{kind}' p50 / worst (ms)", "s",
            [f"{statistics.median(x['latencies'][kind]) * 1e3:.0f} / {max(x['latencies'][kind]) * 1e3:.0f}"
             if kind in x["latencies"] else None for x in u])
    for label, which, part in (("start-up to first complete round, poller", "headless", "startup"),
                               (f"poller window ({seconds:g}s)", "headless", "window"),
                               ("start-up to first complete screen, console", "ui", "startup"),
                               (f"console live window ({idle:g}s)", "ui", "window"),
                               (f"console soak ({soak:g}s)", "soak", "window")):
        if which == "soak" and not soak:
            continue
        ws: list[Window | None] = [getattr(getattr(r, which), part) if getattr(r, which) else None for r in runs]
        rows.append((f"{label}:", [""] * len(runs), ""))
        row("  Berth / sim / machine busy (cores)", "s",
            [None if w is None else f"{w.berth:.2f}/{w.sim:.2f}/{w.machine:.2f}" for w in ws], f"of {cores}")

    heads = [f"{r.nodes}x{r.per_node}" for r in runs]
    width = max(len(name) for name, _, _ in rows)
    print(f"\nBerth against a simulated fleet (nodes x containers per node, cgroup v{cgroup}), {seconds:g}s poller "
          f"window, {idle:g}s live console window, terminal {SIZE[0]}x{SIZE[1]}, {cores} CPUs")
    print(f"{'metric':{width}} " + " ".join(f"{h:>15}" for h in heads) + f" {'target':>15}")
    for name, values, target in rows:
        print(f"{name:{width}} " + " ".join(f"{v:>15}" for v in values) + f" {target:>15}")
    for r in runs:
        for note in r.notes:
            print(f"note: {note}")


def parse_fleet(text: str) -> tuple[int, int]:
    n, _, m = text.lower().partition("x")
    try:
        return int(n), int(m)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--fleet wants NODESxCONTAINERS, e.g. 20x100, not {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m bench.fleet_scale", description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--containers-per-node", type=int, default=100)
    ap.add_argument("--fleet", type=parse_fleet, action="append", default=[],
                    help="NODESxCONTAINERS; repeat for several fleets (overrides --nodes/--containers-per-node)")
    ap.add_argument("--seconds", type=float, default=30.0, help="headless poller window")
    ap.add_argument("--idle", type=float, default=10.0, help="live console window before the keys")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the key script")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cgroup", choices=("1", "2", "mixed"), default="1", help="the sim nodes' cgroup flavour")
    ap.add_argument("--soak", type=float, default=0.0, metavar="SECONDS",
                    help="then run the console live (no keys) this long and report its RSS growth, as measured")
    ap.add_argument("--ready-timeout", type=float, default=120.0,
                    help="longest wait for the first complete round / screen")
    ap.add_argument("--rss-points", type=int, default=6, help=argparse.SUPPRESS)
    ap.add_argument("--child", choices=("headless", "console"), help=argparse.SUPPRESS)
    ap.add_argument("--inventory", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    out = sys.__stdout__
    assert out is not None
    if args.child == "headless":
        asyncio.run(headless(args.inventory, args.seconds, args.rss_points, args.ready_timeout, out))
        return 0
    if args.child == "console":
        started = psutil.Process().create_time() - time.time() + time.perf_counter()
        asyncio.run(console(args.inventory, args.idle, args.rounds, 10, "web", args.seed, started,
                            args.ready_timeout, args.rss_points, out))
        return 0
    # A kill must unwind through the `with SimFleet` blocks: its node processes live in their own sessions.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    fleets = args.fleet or [(args.nodes, args.containers_per_node)]
    runs = [measure(n, m, args) for n, m in fleets]
    table(runs, args.seconds, args.idle, args.soak, args.cgroup)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
