"""Garbage collection on the console's terms: long-lived objects frozen, and only a bounded number of times."""

from __future__ import annotations

import gc
from dataclasses import replace

import fleetdata
import pytest
from uifakes import make_app

from console.ui.collector import Collector

NARROW = (80, 24)


@pytest.fixture(autouse=True)
def _unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_settle_freezes_survivors_so_full_collections_skip_them():
    # Given objects that live for the whole run
    keep = [[i] for i in range(10_000)]
    collector = Collector(max_settles=2)
    # When the console settles
    assert collector.settle()
    # Then they are out of the collector's sight, and a second settle freezes what came since
    assert gc.get_freeze_count() >= len(keep)
    frozen = gc.get_freeze_count()
    later = [[i] for i in range(1_000)]
    assert collector.settle()
    assert gc.get_freeze_count() >= frozen + len(later)
    # But never more than max_settles times: frozen cycles are never collected
    assert not collector.settle()
    assert collector.settles == 2
    collector.uninstall()
    assert gc.get_freeze_count() == 0


def test_inactive_collector_leaves_the_interpreter_alone():
    collector = Collector()
    collector.active = False
    assert not collector.settle()
    assert gc.get_freeze_count() == 0


async def test_app_settles_after_its_first_frame_and_on_the_first_complete_snapshot():
    app = make_app()
    app.snapshot = None  # nothing known yet: the poller is still connecting
    async with app.run_test(size=NARROW) as pilot:
        # Given the first frame: the app's own objects are frozen
        await pilot.pause()
        assert app.collector.settles == 1
        # When incomplete snapshots arrive nothing more is frozen; the first complete one settles again
        snap = fleetdata.fleet()
        app.apply_snapshot(replace(snap, complete=False))
        await pilot.pause()
        assert app.collector.settles == 1
        app.apply_snapshot(snap)
        await pilot.pause()
        assert app.collector.settles == 2
        app.apply_snapshot(replace(snap, seq=snap.seq + 1))
        await pilot.pause()
        assert app.collector.settles == 2
        assert gc.get_freeze_count() > 0
    # Then leaving the app unfreezes everything (one process runs many apps in tests)
    assert gc.get_freeze_count() == 0
