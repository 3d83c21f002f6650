"""Modal dialogs: confirm an action, type a node name to confirm a bulk one, pick a target node.

Every dialog shows what was captured when the key was pressed; nothing here
reads the live table, so a row moving under the operator's finger changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from console.ui.markup import escape

BODY_MAX = 16  # summary lines shown at most; fewer when the screen is short
DIALOG_CSS = """
{name} {{ align: center middle; }}
{name} > .dialog {{ width: 76; max-width: 100%; height: auto; max-height: 100%; padding: 1 2; }}
{name} .dialog--buttons {{ height: auto; align-horizontal: right; margin-top: 1; }}
{name} .dialog--buttons Button {{ margin-left: 2; min-width: 10; }}
{name} .dialog--body {{ height: auto; max-height: 16; }}
"""


# Keys that can answer a dialog "yes": its y binding, and enter / space on a focused button or input.
ANSWER_KEYS = frozenset({"y", "enter", "space"})


class GuardedDialog(ModalScreen[Any]):
    """A dialog that keys typed before it was drawn cannot answer.

    A burst of keys (fast typing, a laggy link) may still be queued when an action pushes its
    dialog; an Enter meant for a filter must not confirm a stop. A key's time is when it
    arrived, so a key older than the dialog's first frame is dropped before any binding sees it.
    """

    drawn_at: float | None = None

    def on_mount(self) -> None:
        self.call_after_refresh(self._drawn)

    def _drawn(self) -> None:
        self.drawn_at = time.monotonic()
        self._fit_body()

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self._fit_body)

    def _fit_body(self) -> None:
        """The summary scrolls; the hint, the input and the buttons are never cut off (80x24:
        a drain or migrate summary is longer than the screen)."""
        bodies = self.query(".dialog--body")
        if not bodies:
            return
        body = bodies.first()
        dialog = self.query_one(".dialog")
        fixed = sum(w.outer_size.height + w.styles.margin.height
                    for w in dialog.children if w is not body and w.display)
        room = self.size.height - dialog.styles.gutter.height - dialog.styles.margin.height - fixed
        body.styles.max_height = max(2, min(BODY_MAX, room))

    def on_key(self, event: events.Key) -> None:
        if event.key in ANSWER_KEYS and (self.drawn_at is None or event.time < self.drawn_at):
            event.stop()
            event.prevent_default()


class ConfirmScreen(GuardedDialog):
    """y confirms, n / esc cancel; Cancel has the focus, so a stray enter cancels. The summary
    comes from the action's plan."""

    DEFAULT_CSS = DIALOG_CSS.format(name="ConfirmScreen")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Confirm", show=False),
        Binding("n,escape", "answer(False)", "Cancel", show=False),
    ]

    def __init__(self, title: str, lines: Sequence[str], *, danger: bool = False, confirm: str = "Confirm") -> None:
        super().__init__()
        self.title_text = title
        self.lines = tuple(lines)
        self.danger = danger
        self.confirm_label = confirm

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -danger" if self.danger else "dialog"):
            yield Label(escape(self.title_text), classes="dialog--title")
            with VerticalScroll(classes="dialog--body"):
                yield Static("\n".join(escape(line) for line in self.lines), id="confirm-summary")
            yield Label(f"y: {escape(self.confirm_label.lower())}    n / esc: cancel    tab: next button",
                        classes="dialog--hint")
            with Horizontal(classes="dialog--buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.confirm_label, id="confirm", variant="error" if self.danger else "primary")

    def on_mount(self) -> None:
        self.set_focus(self.query_one("#cancel", Button))

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm")


class TypedConfirmScreen(GuardedDialog):
    """For bulk actions (drain): the operator types the node name; nothing else confirms."""

    DEFAULT_CSS = DIALOG_CSS.format(name="TypedConfirmScreen")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, title: str, lines: Sequence[str], expected: str) -> None:
        super().__init__()
        self.title_text = title
        self.lines = tuple(lines)
        self.expected = expected

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -danger"):
            yield Label(escape(self.title_text), classes="dialog--title")
            with VerticalScroll(classes="dialog--body"):
                yield Static("\n".join(escape(line) for line in self.lines))
            yield Label(f"Type the node name ({escape(self.expected)}) and press enter; esc cancels.",
                        classes="dialog--hint")
            yield Input(placeholder=self.expected, id="typed", classes="command-input")

    def on_mount(self) -> None:
        self.set_focus(self.query_one("#typed", Input))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip() == self.expected:
            self.dismiss(True)
        else:
            self.query_one(".dialog--hint", Label).update(
                f"“{escape(event.value)}” is not {escape(self.expected)}: type it exactly, or esc to cancel.")

    def action_cancel(self) -> None:
        self.dismiss(False)


# console.actions' rank_targets words a node that cannot take the container so (its fit line).
REFUSED_FITS = ("unfit", "unreachable")


class PickNodeScreen(ModalScreen[str | None]):
    """Migration target picker: nodes ranked best first, with why. A node that would be refused
    (down, cordoned, too full, a name clash) is listed greyed with its reason, and cannot be picked."""

    DEFAULT_CSS = DIALOG_CSS.format(name="PickNodeScreen") + """
    PickNodeScreen OptionList { height: auto; max-height: 14; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, title: str, ranked: Sequence[tuple[str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.ranked = tuple(ranked)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(escape(self.title_text), classes="dialog--title")
            yield OptionList(*(Option(f"{escape(node)}  [dim]{escape(fit)}[/]", id=node,
                                      disabled=fit.startswith(REFUSED_FITS)) for node, fit in self.ranked),
                             id="targets")
            yield Label("↑↓ choose · enter pick · esc cancel · greyed: cannot take it (why beside)",
                        classes="dialog--hint")

    def on_mount(self) -> None:
        self.query_one("#targets", OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
