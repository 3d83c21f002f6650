"""An action is in flight and the operator quits (or asks to cancel it): say what each way out does, then do it.

Quitting never drops a running migration or drain on the floor: the operator waits for it, cancels
it at its next safe point (the action's own rollback), or leaves it for `berth recover`. "Back" is
focused, and no letter key answers, so keys typed ahead of the dialog cannot choose for the operator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from console.ui.markup import escape
from console.ui.screens.dialogs import DIALOG_CSS

WAIT = ("wait: the action runs to its end, then Berth quits")
CANCEL = ("cancel safely: it stops at its next safe point. A migration still copying is rolled back (the "
          "container stays where it was); one already switching over is finished. A drain keeps the containers "
          "it moved and leaves the rest on the node.")
LEAVE = ("leave for recover: it stops at once and Berth quits. A migration's journal is kept and its audit record "
         "closed as left for recover: `berth recover` (or R on the next start) finishes or rolls it back.")


class InFlightScreen(ModalScreen[str | None]):
    """Dismissed with "wait", "cancel", "leave", or None (back: keep working)."""

    DEFAULT_CSS = DIALOG_CSS.format(name="InFlightScreen")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back", show=False)]

    def __init__(self, labels: Sequence[str], *, quitting: bool) -> None:
        super().__init__()
        self.labels = tuple(labels)
        self.quitting = quitting

    def compose(self) -> ComposeResult:
        n = len(self.labels)
        title = (f"Quit with {n} action{'s' if n != 1 else ''} in flight?" if self.quitting
                 else f"Cancel {n} action{'s' if n != 1 else ''} in flight?")
        lines = [f"in flight: {label}" for label in self.labels] + [""]
        lines += [WAIT, CANCEL, LEAVE] if self.quitting else [CANCEL]
        with Vertical(classes="dialog -danger"):
            yield Label(escape(title), classes="dialog--title")
            with VerticalScroll(classes="dialog--body"):
                yield Static("\n".join(escape(line) for line in lines), id="inflight-summary")
            yield Label("tab: next choice    enter: choose    esc: back", classes="dialog--hint")
            with Horizontal(classes="dialog--buttons"):
                yield Button("Back", id="inflight-back")
                if self.quitting:
                    yield Button("Wait", id="inflight-wait")
                yield Button("Cancel safely", id="inflight-cancel", variant="warning")
                if self.quitting:
                    yield Button("Leave for recover", id="inflight-leave", variant="error")

    def on_mount(self) -> None:
        self.query_one("#inflight-back", Button).focus()

    def action_back(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        choice = (event.button.id or "").removeprefix("inflight-")
        self.dismiss(None if choice == "back" else choice)
