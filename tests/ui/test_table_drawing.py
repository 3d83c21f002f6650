"""The virtual table redraws rows from its cache only while nothing they depend on changed."""

from __future__ import annotations

from dataclasses import replace

import fleetdata
from screen_text import screen_text
from uifakes import make_app

NARROW = (80, 24)


def line_text(table, y: int) -> str:
    return "".join(seg.text for seg in table.render_line(y))


def line_styles(table, y: int) -> set:
    return {seg.style for seg in table.render_line(y)}


async def test_cursor_moves_repaint_the_rows_it_leaves_and_reaches():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2")
        await pilot.pause()
        table = app.fleet.pane.table
        cursor = table._style("cursor")
        # Given the cursor on the first row
        assert any(cursor.bgcolor == s.bgcolor for s in line_styles(table, 1))
        # When it moves down twice
        await pilot.press("down", "down")
        await pilot.pause()
        # Then only the third row wears it, on screen as in the table
        assert table.cursor == 2
        wearing = [y for y in (1, 2, 3, 4) if any(cursor.bgcolor == s.bgcolor for s in line_styles(table, y))]
        assert wearing == [3]
        strips = app.screen._compositor.render_strips()
        region = table.content_region
        on_screen = [y for y in (1, 2, 3, 4)
                     if any(seg.style and seg.style.bgcolor == cursor.bgcolor
                            for seg in strips[region.y + y].crop(region.x, region.right))]
        assert on_screen == [3]


async def test_a_new_snapshot_redraws_rows_with_their_new_figures():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2")
        await pilot.pause()
        table = app.fleet.pane.table
        top = table.rows[0]
        assert f"{top.cpu_percent:.1f}" in line_text(table, 1)
        # When the next snapshot has new figures for the same containers
        snap = app.snapshot
        moved = tuple(replace(c, cpu_percent=(c.cpu_percent or 0) + 1000.0) if c.id == top.id else c
                      for c in snap.containers)
        app.apply_snapshot(replace(snap, seq=snap.seq + 1, containers=moved))
        await pilot.pause()
        # Then the row shows the new figure, not a cached drawing of the old one
        assert table.rows[0].id == top.id
        assert f"{top.cpu_percent + 1000.0:.1f}" in line_text(table, 1)
        assert f"{top.cpu_percent + 1000.0:.1f}" in screen_text(app)


async def test_the_same_rows_under_a_new_context_are_redrawn():
    now = [fleetdata.NOW]
    app = make_app(clock=lambda: now[0])
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2")
        await pilot.pause()
        table = app.fleet.pane.table
        live = line_styles(table, 1)
        # When no snapshot arrives for a minute (the same row objects, a new clock)
        now[0] += 60
        app._tick()
        await pilot.pause()
        # Then the rows are drawn as stale, not from the cache of when they were live
        assert table._style("stale") is not None
        assert line_styles(table, 1) != live


async def test_sort_and_theme_changes_redraw_correctly():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2")
        await pilot.pause()
        table = app.fleet.pane.table
        # When the rows are re-sorted (same row objects, new positions)
        await pilot.press("N")
        await pilot.pause()
        # Then every visible line shows the row now at its position
        for y in range(1, 6):
            assert table.rows[y - 1].name in line_text(table, y)
        # And a theme change repaints with the new theme's colours
        before = line_styles(table, 2)
        app.set_theme("light")
        await pilot.pause()
        assert line_styles(table, 2) != before
