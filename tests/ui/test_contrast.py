"""Every theme keeps text readable: WCAG contrast >= 4.5:1 for every colour pair the console draws.

The pairs are not listed by hand: each theme's console is driven through its screens (the three
panes, a focused and a blurred cursor row, the alert strip with critical alerts, header, footer,
help, a confirmation, the NOC wall and the read-only banner) and every text cell on screen is
checked, so a new pairing is covered the day it is drawn. Colours are the drawn ones; the 16 ANSI
colours (the NOC theme keeps to them) are measured as xterm's defaults, the usual reference
(`XTERM` below). Box-drawing, bar and sparkline glyphs are graphics, not text: they are skipped.
"""

from __future__ import annotations

import pytest
from rich.color import Color, ColorType
from rich.style import Style
from textual.screen import ModalScreen
from uifakes import FakeEngine, make_app

from console.ui.screens.dialogs import ConfirmScreen

# xterm's default palette for ANSI colours 0-15 (XTerm's "XTerm*color0..15" defaults).
XTERM = ("000000", "cd0000", "00cd00", "cdcd00", "0000ee", "cd00cd", "00cdcd", "e5e5e5",
         "7f7f7f", "ff0000", "00ff00", "ffff00", "5c5cff", "ff00ff", "00ffff", "ffffff")
GRAPHICS = set("▁▂▃▄▅▆▇█▏▎▍▌▋▊▉━─│┃╸╺╹╻╭╮╰╯┏┓┗┛═║╔╗╚╝▔▀▐░▒▓ ")
MINIMUM = 4.5

RGB = tuple[int, int, int]


def rgb(color: Color | None, fallback: RGB) -> RGB:
    if color is None or color.type == ColorType.DEFAULT:
        return fallback
    if color.type == ColorType.STANDARD and color.number is not None and color.number < 16:
        code = XTERM[color.number]
        return int(code[0:2], 16), int(code[2:4], 16), int(code[4:6], 16)
    t = color.get_truecolor()
    return t.red, t.green, t.blue


def luminance(c: RGB) -> float:
    def channel(v: int) -> float:
        s = v / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in c)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: RGB, b: RGB) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_contrast_formula_matches_wcag_reference_values():
    assert contrast((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert contrast((255, 255, 255), (255, 255, 255)) == pytest.approx(1.0)
    assert contrast((0x76, 0x76, 0x76), (255, 255, 255)) == pytest.approx(4.54, abs=0.01)  # WCAG's grey


def pair(style: Style) -> tuple[RGB, RGB]:
    fg, bg = rgb(style.color, (255, 255, 255)), rgb(style.bgcolor, (0, 0, 0))
    if style.reverse:
        fg, bg = bg, fg
    if style.dim:  # terminals draw dim text half-way to the background
        fg = tuple((f + b) // 2 for f, b in zip(fg, bg, strict=True))  # type: ignore[assignment]
    return fg, bg


def failures(app, where: str, found: dict) -> None:
    """Record each text cell on screen below the minimum, once per colour pair. Under a modal only
    the dialog counts: the screen behind it is dimmed on purpose, inactive until the dialog closes."""
    screen = app.screen
    dialogs = screen.query(".dialog") if isinstance(screen, ModalScreen) else None
    region = (dialogs.first() if dialogs else screen).region
    for y, strip in enumerate(screen._compositor.render_strips()):
        x = 0
        for seg in strip:
            text, start = seg.text, x
            x += seg.cell_length
            if not (region.y <= y < region.bottom and region.x <= start and x <= region.right):
                continue
            if seg.style is None or not any(ch not in GRAPHICS for ch in text):
                continue
            fg, bg = pair(seg.style)
            ratio = contrast(fg, bg)
            if ratio < MINIMUM:
                found.setdefault((fg, bg), f"{ratio:.2f} {text.strip()[:24]!r} ({where})")


async def walk(app, size) -> dict:
    found: dict = {}
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        failures(app, "start", found)
        for keys, where in ((["2"], "containers"), (["down", "down"], "cursor moved"), (["3"], "tenants"),
                            (["1", "down"], "hosts"), (["tab"], "blurred cursor"),
                            (["question_mark"], "help"), (["escape", "2", "slash", "a"], "filter line")):
            await pilot.press(*keys)
            await pilot.pause()
            failures(app, where, found)
        await pilot.press("escape", "escape")
        for keys, where in ((["2", "enter"], "detail"), (["l"], "logs"), (["escape", "escape", "a"], "alert list"),
                            (["escape", "4"], "audit")):
            await pilot.press(*keys)
            await app.workers.wait_for_complete()
            await pilot.pause()
            failures(app, where, found)
        await pilot.press("escape")
        await app.push_screen(ConfirmScreen("Stop acme-api-1 on node-2?", ["effect: stops"], danger=True,
                                            confirm="Stop"))
        await pilot.pause()
        failures(app, "confirmation", found)
    return found


@pytest.mark.parametrize("theme", ["dark", "light", "noc"])
@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_every_text_on_screen_has_enough_contrast(theme, size):
    found = await walk(make_app(theme=theme, read_only=True, engine=FakeEngine), size)
    assert not found, f"{theme} {size}: text below {MINIMUM}:1:\n" + "\n".join(sorted(found.values()))


async def test_the_noc_wall_has_enough_contrast():
    found = await walk(make_app(noc=True), (160, 48))
    assert not found, "noc wall: text below 4.5:1:\n" + "\n".join(sorted(found.values()))
