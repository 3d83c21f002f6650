"""run_app starts the fleet thread before Textual, so the nodes connect while the app starts up:
a snapshot published before the app is mounted must still be the first thing on screen, and the
app must not try to post to a message queue it does not have yet."""

from __future__ import annotations

import fleetdata
from screen_text import screen_text
from uifakes import make_app

from console.fleet.model import FleetSnapshot


class EarlyFeed:
    """Already running when the app mounts, with a snapshot published before that."""

    def __init__(self) -> None:
        self.latest: FleetSnapshot | None = None
        self.is_started = True
        self.focused: list[frozenset[str]] = []

    def start(self) -> None:
        raise AssertionError("the app must not start a feed that is already running")

    def focus(self, ids: frozenset[str]) -> None:
        self.focused.append(ids)

    def stop(self) -> None:
        pass


async def test_a_snapshot_published_before_mount_is_the_first_screen() -> None:
    feed = EarlyFeed()
    app = make_app(feed=feed)
    app.snapshot = None  # nothing but what the feed published
    snap = fleetdata.fleet()
    app.deliver(snap)  # on the fleet thread, before the app runs: dropped, not posted
    feed.latest = snap
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.snapshot is snap
        assert snap.nodes[0].name in screen_text(app)
        # and from mount on, deliveries go through the message queue as usual
        newer = fleetdata.fleet(fleetdata.NOW + 1)
        app.deliver(newer)
        for _ in range(100):
            if app.snapshot is newer:
                break
            await pilot.pause(0.05)
        assert app.snapshot is newer
