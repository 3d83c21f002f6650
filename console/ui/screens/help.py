"""`?`: every binding, generated from the registry plus the widgets' own keys."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from console.ui.markup import escape
from console.ui.registry import COMMANDS, LOCAL_KEYS


def help_lines(read_only: bool = False) -> list[str]:
    """The help text as markup lines (also what tests read)."""
    lines: list[str] = []
    groups: dict[str, list[tuple[str, str]]] = {}
    for c in COMMANDS:
        note = " [dim](not bound: read-only)[/]" if c.mutating and read_only else ""
        groups.setdefault(c.group, []).append((c.key_text, escape(c.help) + note))
    for group, key, text in LOCAL_KEYS:
        groups.setdefault(group, []).append((key, escape(text)))
    for group, rows in groups.items():
        lines.append(f"[b $accent]{group}[/]")
        for key, text in rows:
            lines.append(f"  [b $primary]{escape(key):<12}[/] {text}")
        lines.append("")
    return lines


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > .dialog { width: 100; max-width: 100%; height: 90%; padding: 0 1; }
    HelpScreen VerticalScroll { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close", show=False),
    ]

    def __init__(self, read_only: bool = False) -> None:
        super().__init__()
        self.read_only = read_only

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Berth keys — esc closes; ctrl+p finds any action by name", classes="dialog--title")
            with VerticalScroll():
                yield Static("\n".join(help_lines(self.read_only)), id="help-text")

    def action_close(self) -> None:
        self.dismiss(None)
