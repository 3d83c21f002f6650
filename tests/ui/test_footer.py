"""The footer is rebuilt only when the keys it shows change, not on every focus change."""

from __future__ import annotations

from textual.widgets._footer import FooterKey
from uifakes import make_app

from console.ui.widgets.footer import StableFooter

NARROW = (80, 24)


def footer_keys(app) -> list[FooterKey]:
    return list(app.screen.query_one(StableFooter).query(FooterKey))


async def test_pane_switches_do_not_rebuild_the_footer_but_the_filter_line_does():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.pause()
        # Given the footer as first drawn
        before = footer_keys(app)
        assert any(k.description == "Hosts" for k in before)
        # When focus moves between panes
        for key in ("2", "3", "1"):
            await pilot.press(key)
            await pilot.pause()
        # Then the same key widgets are still there: nothing was torn down and restyled
        assert footer_keys(app) == before
        # But the filter line takes the digit keys, and the footer says so; Esc brings them back
        await pilot.press("slash")
        await pilot.pause()
        assert not any(k.description == "Hosts" for k in footer_keys(app))
        await pilot.press("escape")
        await pilot.pause()
        assert any(k.description == "Hosts" for k in footer_keys(app))


async def test_footer_follows_a_remapped_key():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.pause()
        # When the operator remaps the hosts pane key
        app.set_keymap({"berth.hosts": "h"})
        await pilot.pause()
        # Then the footer shows the new key
        hosts = [k for k in footer_keys(app) if k.description == "Hosts"]
        assert hosts and hosts[0].key == "h"
