"""Measure the containers pane with 5,000 containers under Pilot: filter keystroke, sort key, scroll, snapshot.

Run as a script (not collected by pytest): `python tests/ui/measure_ui.py [COUNT]`.
Each figure is the wall time from posting the key press until the app hands
the first frame after it to the driver (a spy on `App._display`), at 160x48,
as median and worst of N runs. Pilot's own round trip (`press` + `pause`, which
waits for the process to look idle) adds a fixed ~100 ms whatever the row
count, so it is not what an operator sees and is not reported.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import fleetdata  # noqa: E402
from screen_text import screen_text  # noqa: E402

from console.ui.app import BerthApp  # noqa: E402


def fmt(samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return f"median {statistics.median(ms):6.1f} ms   worst {max(ms):6.1f} ms   (n={len(ms)})"


async def measure(count: int, size: tuple[int, int] = (160, 48)) -> dict[str, list[float]]:
    snap = fleetdata.big_fleet(count)
    app = BerthApp(inventory=fleetdata.inventory(), clock=lambda: snap.taken_at, rotate_every=0)
    app.snapshot = snap
    out: dict[str, list[float]] = {}
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await pilot.press("2")
        await pilot.pause()
        assert len(app.fleet.pane.table.rows) == count

        frames: list[float] = []
        display = app._display

        def spy(screen, renderable):  # type: ignore[no-untyped-def]
            frames.append(time.perf_counter())
            return display(screen, renderable)

        app._display = spy  # type: ignore[method-assign]
        app.fleet.query_one("#filter").cursor_blink = False  # no unrelated frames while typing

        def first_frame_after(t0: float) -> float:
            later = [f for f in frames if f > t0]
            return (later[0] if later else time.perf_counter()) - t0

        async def timed(name: str, *keys: str) -> None:
            t0 = time.perf_counter()
            await pilot.press(*keys)
            await pilot.pause()
            out.setdefault(name, []).append(first_frame_after(t0))

        # Filter: open the line, then each keystroke re-filters and re-sorts 5,000 rows live.
        await pilot.press("slash")
        for ch in "acme-api":
            await timed("filter keystroke", "minus" if ch == "-" else ch)
        shown = len(app.fleet.pane.table.rows)
        for _ in range(8):
            await timed("filter keystroke", "backspace")
        await pilot.press("escape")
        await pilot.pause()
        for _ in range(3):
            await pilot.press("slash")
            for ch in "node:bm-07":
                await timed("filter keystroke (qualifier)", {":": "colon", "-": "minus"}.get(ch, ch))
            await pilot.press("escape", "escape")
            await pilot.pause()
        for key in ("M", "M", "N", "N", "C", "C") * 2:
            await timed("sort key", key)
        for _ in range(10):
            await timed("scroll page down", "pagedown")
        for _ in range(10):
            await timed("cursor down", "down")
        await timed("jump to end", "end")
        # A new snapshot every poll: apply (alerts + filter + sort + draw) for 5,000 containers.
        for i in range(10):
            changed = replace(snap, seq=snap.seq + i + 1)
            t0 = time.perf_counter()
            app.apply_snapshot(changed)
            await pilot.pause()
            out.setdefault("snapshot applied + drawn", []).append(first_frame_after(t0))
        text = screen_text(app)
        assert "2 Containers" in text
    print(f"containers: {count}; 'acme-api' matched {shown}")
    return out


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    results = asyncio.run(measure(count))
    width = max(len(k) for k in results)
    for name, samples in results.items():
        print(f"{name:<{width}}  {fmt(samples)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
