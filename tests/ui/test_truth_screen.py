"""Pilot: what the console shows of a down node (node-4 in fleetdata) is unknown, not live."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import fleetdata  # noqa: E402
from screen_text import screen_text  # noqa: E402
from uifakes import make_app  # noqa: E402


def _line(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


async def test_a_down_node_shows_unknown_figures_and_stays_out_of_the_live_totals() -> None:
    snap = fleetdata.fleet()
    down = [c for c in snap.containers if c.node == "node-4"]
    assert down and all(c.stale for c in down)
    live = [c for c in snap.containers if c.node != "node-4"]
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        text = screen_text(app)
        running = sum(1 for c in live if c.state == "running")
        assert f"run {running}/{len(live)} (+{len(down)} on down nodes)" in text.splitlines()[0]
        host = _line(text, "node-4")
        assert "?/5" in host and "?/16" in host and "?/64.0G" in host
        assert "0.0/16" not in host and "0B" not in host
        assert re.search(r"\?/64\.0G .* 1m ", host)  # the AGE column: how old the last known data is
        app.fleet.scope_to("node", "node-4")
        await pilot.pause()
        text = screen_text(app)
        for c in down:
            row = _line(text, c.name)
            assert "running?" in row and " running " not in row
        tenant_rows = {m.group(1): m.group(2) for m in re.finditer(r" (umbrella|initech|acme) +(\d+/\d+(?: \+\d+\?)?) ",
                                                                   text)}
        assert tenant_rows == {"umbrella": "4/5 +1?", "initech": "4/6 +2?", "acme": "9/10"}


async def test_at_80_columns_the_down_count_is_short_and_detail_says_last_known() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "+5?" in screen_text(app).splitlines()[0]
        fax = next(c for c in app.snapshot.containers if c.name == "initech-fax")
        app.open_detail(fax)
        await pilot.pause()
        await pilot.pause()
        text = screen_text(app)
        assert "running?" in text and "NODE DOWN" in text and "last known" in text
