"""A footer that rebuilds only when what it shows changes.

Textual's Footer recomposes (removes and re-creates every key widget, restyles
them, re-lays out the screen) whenever the screen's bindings are updated, which
is on every focus change: each pane switch, `/`, Esc. Berth's table and input
bindings are not shown in the footer, so the keys it shows rarely change; this
one compares what it would show with what it shows and skips the rebuild when
they are the same.
"""

from __future__ import annotations

from collections.abc import Hashable

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer


class StableFooter(Footer):
    _shown: Hashable = None

    def shown_keys(self) -> Hashable:
        """What compose() would draw: the shown bindings, enabled or not, and the palette key."""
        app = self.app
        active = self.screen.active_bindings
        keys = tuple(
            (binding.key, binding.action, binding.description, enabled, tooltip, app.get_key_display(binding))
            for (_, binding, enabled, tooltip) in active.values() if binding.show
        )
        palette = active.get(app.COMMAND_PALETTE_BINDING) if self.show_command_palette else None
        return keys, None if palette is None else (palette[1].key, palette[2])

    def compose(self) -> ComposeResult:
        if self._bindings_ready:
            self._shown = self.shown_keys()
        yield from super().compose()

    def bindings_changed(self, screen: Screen) -> None:  # type: ignore[type-arg]
        if self._bindings_ready and self.is_attached and screen is self.screen and screen.app.app_focus \
                and self.shown_keys() == self._shown:
            return
        super().bindings_changed(screen)
