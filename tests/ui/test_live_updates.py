"""Live updates never hold up a key: a snapshot that finds work queued waits for the next frame."""

from __future__ import annotations

from dataclasses import replace

import fleetdata
from textual.message import Message
from uifakes import make_app

from console.ui.app import SnapshotArrived

NARROW = (80, 24)


class Nudge(Message):
    """Stands in for a key press already in the app's queue."""


async def test_a_snapshot_behind_queued_input_is_applied_after_the_frame_and_only_the_newest():
    app = make_app()
    applied: list[int] = []
    async with app.run_test(size=NARROW) as pilot:
        await pilot.pause()
        apply = app.apply_snapshot
        app.apply_snapshot = lambda snap: (applied.append(snap.seq), apply(snap))  # type: ignore[method-assign]
        snap = fleetdata.fleet()
        older, newer = replace(snap, seq=50), replace(snap, seq=51)
        # Given input waiting in the app's queue
        app.post_message(Nudge())
        # When two snapshots arrive before it is handled
        app.on_snapshot_arrived(SnapshotArrived(older))
        app.on_snapshot_arrived(SnapshotArrived(newer))
        # Then nothing is applied ahead of the input, and after the frame only the newest is
        assert applied == []
        await pilot.pause()
        assert applied == [51]
        assert app.snapshot is newer


async def test_a_snapshot_on_an_idle_app_is_applied_at_once():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.pause()
        snap = replace(fleetdata.fleet(), seq=77)
        app.on_snapshot_arrived(SnapshotArrived(snap))
        assert app.snapshot is snap
