"""Run Berth's poller headless for a while and report its own CPU and sample count (JSON on stdout).

Used by the benchmarks as the Berth side of a comparison; CPU is counted only
after the first complete round, so start-up and imports are not charged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time

from console.config import load_inventory
from console.fleet.poller import Fleet, NodeWatcher


class CountingWatcher(NodeWatcher):
    samples = 0

    def _apply_stats(self, cid, doc):  # type: ignore[no-untyped-def]
        CountingWatcher.samples += 1
        super()._apply_stats(cid, doc)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--inventory", required=True)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--list-interval", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=0.0,
                    help="seconds to run after the first complete round before measuring (the idle cadence settles)")
    args = ap.parse_args()
    inv = load_inventory(args.inventory)
    fleet = Fleet(inv, watcher_factory=lambda *a, **k: CountingWatcher(*a, list_interval=args.list_interval, **k))
    async with fleet:
        first = time.monotonic()
        snap = await fleet.wait_complete(60)
        ready = time.monotonic() - first
        await asyncio.sleep(args.warmup)
        print(json.dumps({"event": "ready"}), flush=True)  # lets a harness start its own clock now
        t0, c0, s0 = time.monotonic(), time.process_time(), CountingWatcher.samples
        await asyncio.sleep(args.seconds)
        t1, c1, s1 = time.monotonic(), time.process_time(), CountingWatcher.samples
    cpu = c1 - c0  # CLOCK_PROCESS_CPUTIME_ID: ns resolution, not 10 ms ticks
    print(json.dumps({"cpu_s": cpu, "wall_s": t1 - t0, "samples": s1 - s0, "ready_s": ready,
                      "running": snap.running, "complete": snap.complete,
                      "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


if __name__ == "__main__":
    asyncio.run(main())
