"""Measure migration downtime for a container with a 100 MB named volume on two lab nodes.

Run as a script (root, dockerd installed):  python3 tests/actions/measure_migrate.py [--mb 100] [--runs 3]
Prints each run's downtime (source stopped -> target running), the final-copy share, the stop
(grace period) and pre-copy times, then the median downtime.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))

from dockerlab import BUSYBOX_REF, Lab, lab_available

from console.actions import Actions, AuditLog
from console.config import resolve_inventory


async def one_run(lab: Lab, tmp: Path, run: int, mb: int, settle: float) -> dict[str, float]:
    src, dst = lab.nodes[run % 2], lab.nodes[(run + 1) % 2]
    inventory = resolve_inventory(str(lab.write_inventory(tmp / "inv.toml")))
    name = f"bench-{run}"
    c = src.client().containers.run(BUSYBOX_REF, ["sh", "-c", "while true; do sleep 0.2; done"], name=name,
                                    detach=True, init=True, network_mode="none", mem_limit="64m",
                                    volumes={f"benchdata-{run}": {"bind": "/data", "mode": "rw"}})
    c.exec_run(["sh", "-c", f"dd if=/dev/urandom of=/data/blob bs=1M count={mb} 2>/dev/null; sync"])
    await asyncio.sleep(settle)  # data older than the pre-copy, as a real volume's mostly is
    actions = Actions(inventory, audit=AuditLog(tmp / "audit.jsonl", user="bench@lab"))
    try:
        plan = await actions.plan("migrate", f"{src.name}/{name}", to=dst.name)
        t0 = time.monotonic()
        result = await actions.execute(plan)
        total = time.monotonic() - t0
    finally:
        await actions.aclose()
    if not result.ok or result.downtime is None:
        raise SystemExit(f"run {run}: {result.message}")
    phases = {p["phase"]: p["seconds"] for p in actions.audit.read()[-1]["phases"]}
    return {"downtime": result.downtime, "stop": float(result.details.get("stop_seconds", 0.0)), "final_copy": float(result.details.get("final_copy_seconds", 0.0)),
            "pre_copy": phases.get("pre-copy", 0.0), "total": total}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="volume size in MB (default 100)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds between writing the data and migrating (0: the data is resent at switch)")
    args = parser.parse_args()
    reason = lab_available()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    with Lab(2, prefix="berth-migm-") as lab, tempfile.TemporaryDirectory() as tmp:
        lab.import_image()
        rows = []
        for run in range(args.runs):
            r = await one_run(lab, Path(tmp), run, args.mb, args.settle)
            rows.append(r)
            print(f"run {run + 1}: downtime {r['downtime']:.3f}s (final copy {r['final_copy']:.3f}s), "
                  f"stop {r['stop']:.2f}s, pre-copy {r['pre_copy']:.2f}s, total {r['total']:.2f}s", flush=True)
        print(f"median downtime with a {args.mb} MB volume: {statistics.median(r['downtime'] for r in rows):.3f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
