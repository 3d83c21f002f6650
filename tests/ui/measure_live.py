"""Key-press-to-screen latency while the fleet updates live (issue #5): a script, not collected by pytest.

    python3 tests/ui/measure_live.py --count 5000 --nodes 50 --size 160x48 --rounds 4 [--burn 60] [--profile F]

A feeder thread builds a FleetSnapshot of `--count` containers every second in
which every container's CPU and memory figure changes (node and tenant figures
recomputed), as the poller thread would, and hands it to the app exactly as
`FleetThread` does (`app.deliver`). `--burn MS` adds a second thread doing MS ms
of pure-Python work every 250 ms (the poller's stats drain) to model the GIL.

Keys come from the operator's script (pane switches, sort keys, the live filter,
cursor moves, Enter into a container and Esc back), spaced by random 0-300 ms so
they land at every phase of the 1 Hz updates. Each key is sent the way a
terminal would (`driver.send_message`, no Pilot `pause`, which forces frames);
its latency is from sending until the first frame handed to the driver (a spy on
`App._display`, rendering the bytes a terminal would get) whose view state (screen,
pane, focus, filter line, sort, row under the cursor) is the state the key led to.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import random
import statistics
import sys
import threading
import time
import unicodedata
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, for bench/

import fleetdata  # noqa: E402

from bench import keyframes  # noqa: E402

from console.fleet import density  # noqa: E402
from console.fleet.model import FleetSnapshot  # noqa: E402


def key_script(rounds: int, downs: int, text: str) -> list[str]:
    keys: list[str] = []
    for _ in range(rounds):
        keys += ["2", "C", "M", "N", "C", "slash", *text, "escape", "escape", *["down"] * downs,
                 "enter", "escape", "1", "down", "3", "2"]
    return keys


def kind_of(key: str) -> str:
    if key in "123":
        return "pane 1/2/3"
    if key in ("C", "M", "N"):
        return "sort C/M/N"
    if key == "slash":
        return "open filter /"
    if len(key) == 1 or key == "minus":
        return "filter typing"
    return key


class Feeder:
    """Every `interval` s: a snapshot where every container's figures moved, built on this thread."""

    def __init__(self, base: FleetSnapshot, deliver: Any, interval: float = 1.0) -> None:
        self.base = base
        self.deliver = deliver
        self.interval = interval
        self.stop = threading.Event()
        self.built: list[float] = []
        self.windows: list[tuple[float, float]] = []
        self.thread = threading.Thread(target=self._run, name="feeder", daemon=True)
        self._by_node: dict[str, list[int]] = {}
        for i, c in enumerate(base.containers):
            self._by_node.setdefault(c.node, []).append(i)

    def make(self, seq: int) -> FleetSnapshot:
        base = self.base
        rng = random.Random(seq)
        containers = []
        for c in base.containers:
            if c.cpu_percent is None:
                containers.append(c)
                continue
            containers.append(replace(c, cpu_percent=round(c.cpu_percent * rng.uniform(0.5, 1.5), 1),
                                      mem_used=int((c.mem_used or 0) * rng.uniform(0.95, 1.05)),
                                      sampled_at=base.taken_at + seq))
        nodes = []
        for n in base.nodes:
            own = [containers[i] for i in self._by_node.get(n.name, ())]
            nodes.append(replace(n, density=density.node_density(n.cpus, n.mem_total, own)))
        return replace(base, seq=base.seq + seq, taken_at=base.taken_at, nodes=tuple(nodes),
                       containers=tuple(containers), tenants=density.tenants(containers, fleetdata.QUOTAS))

    def _run(self) -> None:
        seq = 0
        nxt = time.perf_counter()
        while not self.stop.is_set():
            seq += 1
            t0 = time.perf_counter()
            snap = self.make(seq)
            t1 = time.perf_counter()
            self.built.append(t1 - t0)
            self.windows.append((t0, t1))
            self.deliver(snap)
            nxt += self.interval
            self.stop.wait(max(0.0, nxt - time.perf_counter()))


class Burner:
    """`ms` of pure-Python work every 250 ms, like the poller draining stats streams."""

    def __init__(self, ms: float) -> None:
        self.ms = ms
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="burner", daemon=True)

    def _run(self) -> None:
        nxt = time.perf_counter()
        while not self.stop.is_set():
            end = time.perf_counter() + self.ms / 1000
            while time.perf_counter() < end:
                d = {}
                for i in range(200):
                    d[str(i)] = i * 1.5
            nxt += 0.25
            self.stop.wait(max(0.0, nxt - time.perf_counter()))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from textual import events
    from textual._compositor import CompositorUpdate
    from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key
    from textual.widgets import Input

    from console.ui.app import BerthApp

    width, height = (int(v) for v in args.size.split("x"))
    base = fleetdata.big_fleet(args.count, nodes=args.nodes)
    app = BerthApp(inventory=fleetdata.inventory(), clock=lambda: base.taken_at + 1, rotate_every=0)
    frames: list[tuple[float, tuple[Any, ...]]] = []
    render_cost: list[float] = []
    apply_cost: list[float] = []
    display = app._display

    def view_state() -> tuple[Any, ...]:
        return keyframes.view_state(app)

    def spy(screen, renderable):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        if isinstance(renderable, CompositorUpdate):
            renderable.render_segments(app.console)
        frames.append((t0, view_state()))
        result = display(screen, renderable)
        render_cost.append(time.perf_counter() - t0)
        return result

    app._display = spy  # type: ignore[method-assign]
    if args.no_collector:  # A/B: CPython's own collection schedule
        app.collector.active = False
    apply = app.apply_snapshot

    def timed_apply(snap: FleetSnapshot) -> None:
        t0 = time.perf_counter()
        apply(snap)
        t1 = time.perf_counter()
        apply_cost.append(t1 - t0)
        applied_at.append((t0, t1))

    app.apply_snapshot = timed_apply  # type: ignore[method-assign]
    from textual.screen import Screen

    paint_cost: list[float] = []
    applied_at: list[tuple[float, float]] = []
    timer_update = Screen._on_timer_update

    def timed_update(screen: Screen) -> None:  # type: ignore[type-arg]
        t0 = time.perf_counter()
        timer_update(screen)
        paint_cost.append(time.perf_counter() - t0)

    Screen._on_timer_update = timed_update  # type: ignore[method-assign]
    feeder = Feeder(base, app.deliver)
    gc_pauses: list[tuple[int, float, float]] = []
    gc_start: list[float] = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            gc_pauses.append((info["generation"], gc_start[0], time.perf_counter()))

    import gc

    gc.callbacks.append(on_gc)
    burner = Burner(args.burn) if args.burn else None
    latencies: dict[str, list[float]] = {}
    missed = 0
    behind: dict[str, list[float]] = {}
    gc_hit: dict[str, list[float]] = {}
    prof = cProfile.Profile() if args.profile else None
    async with app.run_test(size=(width, height)) as pilot:
        app.apply_snapshot(base)
        await pilot.pause()
        app.fleet.query_one("#filter", Input).cursor_blink = False
        if not args.static:
            feeder.thread.start()
        if burner:
            burner.thread.start()
        await asyncio.sleep(2.5)
        import gc as _gc

        print("gc objects by generation:", [len(_gc.get_objects(g)) for g in range(3)], "frozen",
              _gc.get_freeze_count(), "thresholds", _gc.get_threshold(), file=sys.stderr)
        if args.gc_freeze:
            _gc.collect()
            _gc.freeze()
        if args.gc_off:
            _gc.disable()
        if args.gc_threshold:
            _gc.set_threshold(*(int(v) for v in args.gc_threshold.split(",")))
        apply_cost.clear()
        gc_pauses.clear()
        render_cost.clear()
        paint_cost.clear()
        driver = app._driver
        assert driver is not None
        rng = random.Random(args.seed)
        if prof:
            prof.enable()
        for key in key_script(args.rounds, args.downs, args.text):
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            k = key if not (len(key) == 1 and not key.isalnum()) else _character_to_key(key)
            original = REPLACED_KEYS.get(k, k)
            try:
                char: str | None = unicodedata.lookup(_get_unicode_name_from_key(original))
            except KeyError:
                char = k if len(k) == 1 else None
            before = view_state()
            ev = events.Key(k, char)
            ev.set_sender(app)
            t = time.perf_counter()
            driver.send_message(ev)
            # The state the key leads to: changed from before and stable for 40 ms.
            deadline = t + 3.0
            want = before
            stable_since = None
            while time.perf_counter() < deadline:
                await asyncio.sleep(0.002)
                now_state = view_state()
                if now_state != want:
                    want, stable_since = now_state, time.perf_counter()
                elif want != before and stable_since and time.perf_counter() - stable_since > 0.04:
                    break
            while time.perf_counter() < deadline:
                later = [f for f, s in frames if f > t and s == want]
                if later:
                    break
                await asyncio.sleep(0.002)
            later = [f for f, s in frames if f > t and s == want]
            if not later or want == before:
                missed += 1
                continue
            latencies.setdefault(kind_of(key), []).append(later[0] - t)
            if args.verbose and later[0] - t > 0.05:
                tags = [f"{tag}" for tag, spans in (("apply", applied_at), ("build", feeder.windows),
                                                    ("gc", [(a, b) for _, a, b in gc_pauses if b - a > .005]))
                        if any(a < later[0] and b > t for a, b in spans)]
                print(f"    slow {key!r} {(later[0] - t) * 1000:.1f} ms {tags}", file=sys.stderr)
            if any(a < later[0] and b > t for _, a, b in gc_pauses if b - a > 0.005):
                gc_hit.setdefault(kind_of(key), []).append(later[0] - t)
            if any(a < later[0] and b > t for a, b in applied_at):
                behind.setdefault(kind_of(key), []).append(later[0] - t)
        if prof:
            prof.disable()
            prof.dump_stats(args.profile)
        feeder.stop.set()
        if burner:
            burner.stop.set()
    if feeder.thread.is_alive():
        feeder.thread.join(2)
    Screen._on_timer_update = timer_update  # type: ignore[method-assign]
    return {"latencies": latencies, "missed": missed, "apply": apply_cost, "render": render_cost,
            "paint": paint_cost, "build": feeder.built, "behind": behind,
            "gc": [(g, b - a) for g, a, b in gc_pauses], "gc_hit": gc_hit}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, default=5000)
    p.add_argument("--nodes", type=int, default=50)
    p.add_argument("--size", default="160x48")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--downs", type=int, default=4)
    p.add_argument("--text", default="acme-api")
    p.add_argument("--burn", type=float, default=0.0, help="ms of Python per 250 ms on another thread")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--profile", help="write a cProfile of the UI thread during the key script")
    p.add_argument("--json", action="store_true")
    p.add_argument("--switch", type=float, help="experiment: sys.setswitchinterval in ms (CPython: 5)")
    p.add_argument("--static", action="store_true", help="no live updates: what the keys alone cost")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--gc-freeze", action="store_true", help="experiment: gc.freeze() once after settling")
    p.add_argument("--no-collector", action="store_true", help="A/B: leave garbage collection to CPython")
    p.add_argument("--gc-off", action="store_true", help="diagnosis only: no automatic collection")
    p.add_argument("--gc-threshold", help="experiment: gc.set_threshold(a,b,c)")
    p.add_argument("--label", default="")
    args = p.parse_args(argv)
    if args.switch:
        sys.setswitchinterval(args.switch / 1000)
    res = asyncio.run(run(args))
    lat = res["latencies"]
    if args.json:
        print(json.dumps({"label": args.label, "count": args.count, "size": args.size, "burn": args.burn,
                          **res}))
        return 0
    all_ms = [v for vs in lat.values() for v in vs]
    print(f"{args.label} {'no-collector' if args.no_collector else 'collector'} {args.count} containers / {args.nodes} nodes at {args.size}, burn {args.burn} ms/250ms, "
          f"switch {sys.getswitchinterval() * 1000:g} ms; "
          f"missed {res['missed']}")
    rows = sorted(lat.items()) + [("ALL", all_ms)]
    for name, vs in rows:
        ms = [v * 1000 for v in vs]
        print(f"  {name:<16} n={len(ms):3d}  p50 {statistics.median(ms):6.1f}  p95 {pct(ms, 0.95):6.1f}  "
              f"max {max(ms):6.1f} ms")
    b = [v * 1000 for vs in res["behind"].values() for v in vs]
    if b:
        print(f"  {'keys w/ apply':<16} n={len(b):3d}  p50 {statistics.median(b):6.1f}  p95 {pct(b, 0.95):6.1f}  "
              f"max {max(b):6.1f} ms  (an apply ran between the key and its frame)")
    g = [v * 1000 for vs in res["gc_hit"].values() for v in vs]
    if g:
        print(f"  {'keys w/ gc':<16} n={len(g):3d}  p50 {statistics.median(g):6.1f}  p95 {pct(g, 0.95):6.1f}  "
              f"max {max(g):6.1f} ms  (a GC pause > 5 ms fell between the key and its frame)")
    for gen in (0, 1, 2):
        ms = [d * 1000 for gg, d in res["gc"] if gg == gen]
        if ms:
            print(f"  {'gc gen %d' % gen:<16} n={len(ms):3d}  p50 {statistics.median(ms):6.1f}  "
                  f"p95 {pct(ms, 0.95):6.1f}  max {max(ms):6.1f} ms")
    for name in ("apply", "paint", "render", "build"):
        ms = [v * 1000 for v in res[name]] or [0.0]
        print(f"  {name + ' cost':<16} n={len(ms):3d}  p50 {statistics.median(ms):6.1f}  p95 {pct(ms, 0.95):6.1f}  "
              f"max {max(ms):6.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
