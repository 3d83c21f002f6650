"""Snapshot tests: each pane and the detail screen at 80x24 and 160x48 on the deterministic fleet.

The clock is frozen at fleetdata.NOW, so ages and uptimes never move. Update with
`pytest tests/ui/test_snapshots.py --snapshot-update` and review the SVGs.
"""

from __future__ import annotations

import pytest
from uifakes import FakeEngine, make_app

SIZES = [(80, 24), (160, 48)]


async def _settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("pane,key", [("hosts", "1"), ("containers", "2"), ("tenants", "3")])
def test_pane(snap_compare, pane, key, size):
    assert snap_compare(make_app(), press=[key], terminal_size=size, run_before=_settle)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_container_detail(snap_compare, size):
    async def open_detail(pilot) -> None:
        await pilot.press("2", "enter")
        await _settle(pilot)

    assert snap_compare(make_app(engine=FakeEngine), terminal_size=size, run_before=open_detail)


def test_drilled_into_a_down_node_at_80x24(snap_compare):
    async def drill(pilot) -> None:
        await pilot.press("1", "end", "enter")
        await _settle(pilot)

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=drill)


def test_light_theme_160x48(snap_compare):
    assert snap_compare(make_app(theme="light"), terminal_size=(160, 48), run_before=_settle)


def test_noc_wall_160x48(snap_compare):
    assert snap_compare(make_app(noc=True), press=["2"], terminal_size=(160, 48), run_before=_settle)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("kind", ["confirm", "drain"])
def test_long_dialog(snap_compare, kind, size):
    """A summary longer than the screen scrolls; hint, input and buttons stay whole (issue 17 item 8)."""
    from console.ui.screens.dialogs import ConfirmScreen, TypedConfirmScreen

    lines = [f"container  hooli-worker-{i:02d}  running  0.4 cores  512M" for i in range(30)]

    async def open_dialog(pilot) -> None:
        if kind == "drain":
            screen = TypedConfirmScreen("Drain node hooli-worker-04?", lines, expected="hooli-worker-04")
        else:
            screen = ConfirmScreen("Migrate hooli-api-1 on sim-01 to sim-02?", lines, danger=True, confirm="Migrate")
        await pilot.app.push_screen(screen)
        while screen.drawn_at is None:
            await pilot.pause(0.05)
        for box in screen.query("Input"):
            box.cursor_blink = False  # a blinking cursor would make the picture depend on timing
        await _settle(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=open_dialog)
