"""Which view a frame shows, so a key's latency is measured to the frame that shows its effect.

Shared by bench/fleet_scale.py and tests/ui/measure_live.py.
"""

from __future__ import annotations

from typing import Any


def view_state(app: Any) -> tuple[Any, ...]:
    """Screen, pane, focus, filter line, sort and the row under the cursor (its key, not its index:
    live re-sorting moves the index, not the row); () before the fleet screen is mounted."""
    from textual.widgets import Input

    fleet = app.fleet
    if not fleet.is_mounted:
        return ()
    pane = fleet.pane
    box = fleet.query_one("#filter", Input)
    focused = app.focused
    return (type(app.screen).__name__, fleet.current, focused.id if focused else None, box.display,
            box.value, pane.filter_text, str(pane.sort), pane.table._cursor_key)
