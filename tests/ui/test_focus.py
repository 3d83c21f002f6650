"""What is on screen is sampled at full rate: the console tells the poller (FleetThread.focus)."""

from __future__ import annotations

from dataclasses import replace

import fleetdata
from uifakes import FakeFeed, make_app

from console.ui.screens.detail import DetailScreen


class RecordingFeed(FakeFeed):
    """A feed that records what the app reports as on screen (no poller here)."""

    @property
    def calls(self) -> list[frozenset[str]]:
        return self.focused


async def test_the_containers_on_screen_and_the_one_in_detail_are_reported_as_focus() -> None:
    feed = RecordingFeed()
    snap = fleetdata.big_fleet(500, nodes=5)
    app = make_app(feed=feed)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        # Given the containers pane at 80x24 with 500 containers
        await pilot.press("2")
        await pilot.pause()
        app.apply_snapshot(replace(snap, seq=snap.seq + 1))
        await pilot.pause()
        # Then the poller hears of the rows on screen, not of all 500
        table = app.fleet.panes["containers"].table
        on_screen = {c.id for c in table.visible_rows()}
        assert feed.calls and feed.calls[-1] == on_screen
        assert 5 <= len(on_screen) < 24
        # When the operator opens one container
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        app.apply_snapshot(replace(snap, seq=snap.seq + 2))
        # Then only that one is in focus
        assert feed.calls[-1] == {app.screen.container.id}
        # And back on the hosts pane no container is
        await pilot.press("escape", "1")
        await pilot.pause()
        app.apply_snapshot(replace(snap, seq=snap.seq + 3))
        assert feed.calls[-1] == frozenset()
        calls = len(feed.calls)
        app.apply_snapshot(replace(snap, seq=snap.seq + 4))
        assert len(feed.calls) == calls  # unchanged focus is not sent again
