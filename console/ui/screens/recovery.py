"""`R` (and on start, when there are any): migrations Berth did not see to their end; finish or roll back.

The list is what the journal says; the choice goes through the same plan -> confirm -> execute as
every action, and the plan is where the live state of both nodes is read and shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from console.actions.redact import mask_text
from console.ui.markup import escape
from console.ui.screens.dialogs import DIALOG_CSS


class RecoveryScreen(ModalScreen[tuple[str, str] | None]):
    """Dismisses with (migration id, "finish" | "rollback"), or None for "later"."""

    DEFAULT_CSS = DIALOG_CSS.format(name="RecoveryScreen") + """
    RecoveryScreen > .dialog { width: 100; }
    RecoveryScreen OptionList { height: auto; max-height: 12; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "choose('finish')", "Finish", show=False),
        Binding("r", "choose('rollback')", "Roll back", show=False),
        Binding("escape,l", "later", "Later", show=False),
    ]

    def __init__(self, records: Sequence[Any], errors: Sequence[str] = ()) -> None:
        super().__init__()
        self.records = tuple(records)
        self.errors = tuple(errors)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -danger" if self.records else "dialog"):
            n = len(self.records)
            yield Label(f"{n} unfinished migration{'s' if n != 1 else ''}: Berth stopped before it ended"
                        if n else "No unfinished migrations", classes="dialog--title")
            if self.records:
                yield OptionList(*(Option(self._text(r), id=r.audit_id) for r in self.records), id="unfinished")
            for err in self.errors:
                yield Static(f"[b]unreadable:[/] {escape(err)}", classes="recovery--error")
            yield Label("↑↓ choose · f finish the move · r roll it back · esc later (R reopens)"
                        if self.records else "esc closes", classes="dialog--hint")

    @staticmethod
    def _text(r: Any) -> str:
        text = escape(mask_text(r.describe()))  # as `berth recover` lists it
        if getattr(r, "outcome", ""):
            text += f"\n  [dim]last known: {escape(mask_text(r.outcome))}[/]"
        return text

    def on_mount(self) -> None:
        if self.records:
            self.query_one("#unfinished", OptionList).focus()

    def selected(self) -> str | None:
        if not self.records:
            return None
        index = self.query_one("#unfinished", OptionList).highlighted
        return self.records[index if index is not None else 0].audit_id

    def action_choose(self, mode: str) -> None:
        chosen = self.selected()
        if chosen is not None:
            self.dismiss((chosen, mode))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()  # enter alone decides nothing: the operator says f or r

    def action_later(self) -> None:
        self.dismiss(None)
