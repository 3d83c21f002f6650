"""At 80x24, the smallest terminal Berth promises: dialogs whole, names cut in the middle, exit codes whole."""

from __future__ import annotations

from dataclasses import replace

import fleetdata
import pytest
from screen_text import screen_text
from test_pilot import NARROW, until
from textual.widgets import Button, Input
from uifakes import make_app

from console.ui.cells import Context, container_cell, exited_text
from console.ui.columns import clip
from console.ui.screens.dialogs import ConfirmScreen, TypedConfirmScreen

LONG = [f"container  hooli-worker-{i:02d}  running  0.4 cores  512M" for i in range(30)]


def test_middle_cut_keeps_the_distinguishing_tail():
    assert clip("hooli-worker-04", 13, cut="middle") == "hooli-…ker-04"
    assert clip("hooli-worker-04", 14, cut="middle") == "hooli-…rker-04"
    assert clip("hooli-worker-04", 15, cut="middle") == "hooli-worker-04"
    assert clip("hooli-worker-04", 13) == "hooli-worker…"  # the default stays an end cut
    assert len(clip("a" * 40, 16, cut="middle")) == 16
    assert clip("abcdef", 4, cut="middle") == "abc…"  # too narrow for two ends: cut at the end


def test_two_names_that_differ_at_the_end_stay_different_when_cut():
    a, b = (clip(f"hooli-worker-frontend-{n}", 16, cut="middle") for n in ("04", "05"))
    assert a != b and a.endswith("04") and b.endswith("05")


@pytest.mark.parametrize("width", [9, 8, 7, 6, 5])
def test_exit_codes_are_never_cut(width):
    assert "137" in exited_text(137, width) and len(exited_text(137, width)) <= width
    assert exited_text(137, 0) == "exited(137)"
    assert exited_text(137, 11) == "exited(137)"


def test_a_stale_exited_state_keeps_its_code_and_question_mark():
    c = replace(fleetdata.make_container(next(s for s in fleetdata.SPECS if s[0] == "globex-report")), stale=True)
    text, _ = container_cell(c, "state", Context(now=fleetdata.NOW), 9)
    assert text.endswith("?") and "137" in text and len(text) <= 9


async def test_the_containers_pane_at_80x24_cuts_names_in_the_middle_and_keeps_exit_codes():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2", "slash", *"globex-report", "enter")
        assert "exit(137)" in screen_text(app)  # OOM-killed: the 9-cell STATE column keeps the code whole
        await pilot.press("slash", *["backspace"] * 20, *"exporter", "enter")
        names = [line.split()[0] for line in screen_text(app).splitlines() if line.startswith("ops-")]
        assert len(names) == 4 and len(set(names)) == 4, names  # four exporters, told apart
        assert all(n.endswith(f"-{i}") for i, n in enumerate(sorted(names), 1)), names


def inside(outer, inner) -> bool:
    return (outer.x <= inner.x and outer.y <= inner.y and inner.right <= outer.right
            and inner.bottom <= outer.bottom)


async def test_a_long_confirmation_at_80x24_keeps_its_hint_and_buttons_on_screen():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        app.push_screen(ConfirmScreen("Migrate hooli-worker-04 on sim-01 to sim-02?", LONG, danger=True,
                                      confirm="Migrate"))
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.drawn_at is not None,
                    "the dialog drawn")
        await pilot.pause()
        screen = app.screen
        dialog = screen.query_one(".dialog")
        assert inside(screen.region, dialog.region)
        for widget in (*screen.query(Button), screen.query_one(".dialog--hint")):
            assert inside(dialog.content_region, widget.region), widget
        text = screen_text(app)
        assert "n / esc: cancel" in text and "Cancel" in text and "Migrate" in text


async def test_a_drain_confirmation_at_80x24_keeps_its_hint_and_input_on_screen():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        app.push_screen(TypedConfirmScreen("Drain node hooli-worker-04?", LONG, expected="hooli-worker-04"))
        await until(pilot, lambda: isinstance(app.screen, TypedConfirmScreen) and app.screen.drawn_at is not None,
                    "the dialog drawn")
        await pilot.pause()
        screen = app.screen
        dialog = screen.query_one(".dialog")
        assert inside(screen.region, dialog.region)
        for widget in (screen.query_one(Input), screen.query_one(".dialog--hint")):
            assert inside(dialog.content_region, widget.region), widget
        assert "press enter; esc cancels" in screen_text(app)
