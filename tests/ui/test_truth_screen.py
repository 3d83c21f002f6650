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


class RecordingFeed:
    """The FleetThread surface the app uses, recording what it was asked to re-read."""

    is_started = True
    latest = None

    def __init__(self) -> None:
        self.refreshed: list[tuple] = []

    def focus(self, ids) -> None:
        pass

    def refresh(self, node, container_id=None) -> None:
        self.refreshed.append((node, container_id))

    def stop(self) -> None:
        pass


async def _confirm_and_finish(pilot, app) -> None:
    from console.ui.screens.dialogs import ConfirmScreen

    for _ in range(50):
        if isinstance(app.screen, ConfirmScreen):
            break
        await pilot.pause(0.02)
    app.screen.dismiss(True)
    await pilot.pause()
    await app.workers.wait_for_complete()


async def test_an_action_that_ends_asks_the_poller_to_reread_its_target_at_once() -> None:
    """The result must not wait for the next listing: a container action re-reads that container,
    a node action that node, a migration both nodes."""
    from uifakes import FakeActions

    feed = RecordingFeed()
    app = make_app(actions=FakeActions(), feed=feed)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        snap = app.snapshot
        api = next(c for c in snap.containers if c.name == "acme-api-1")
        app.run_action_flow("restart", "restart", api)
        await _confirm_and_finish(pilot, app)
        assert feed.refreshed[-1] == ("node-2", api.id)
        app.run_action_flow("cordon", "uncordon", snap.node("node-3"))
        await _confirm_and_finish(pilot, app)
        assert feed.refreshed[-1] == ("node-3", None)


async def test_detail_rereads_inspect_when_the_container_started_again() -> None:
    """The inspect section is of the run it was read in: a new start reads it again."""
    from dataclasses import replace

    from console.ui.screens.detail import DetailScreen

    reads: list[str] = []

    class CountingEngine:
        def __init__(self, node: str) -> None:
            pass

        async def inspect(self, cid: str):
            from uifakes import INSPECT_DOC

            reads.append(cid)
            return INSPECT_DOC

    app = make_app(engine=CountingEngine)
    async with app.run_test(size=(160, 48)) as pilot:
        snap = app.snapshot
        report = next(c for c in snap.containers if c.name == "globex-report")
        app.open_detail(report)
        for _ in range(50):
            if reads:
                break
            await pilot.pause(0.02)
        assert isinstance(app.screen, DetailScreen) and len(reads) == 1
        assert "OOM-KILLED" in screen_text(app)
        started = replace(report, state="running", status="Up", started_at=fleetdata.NOW - 5)
        app.apply_snapshot(replace(snap, seq=snap.seq + 1, containers=tuple(
            started if c.id == report.id else c for c in snap.containers)))
        for _ in range(50):
            if len(reads) == 2:
                break
            await pilot.pause(0.02)
        assert len(reads) == 2
        text = screen_text(app)
        assert "OOM-KILLED" not in text and "exit" not in text.split("image")[0]
