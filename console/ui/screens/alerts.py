"""The alert list: Enter jumps to the alert's object."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from console.fleet.alerts import Alert
from console.ui.markup import escape
from console.ui.widgets.header import SEVERITY_MARK, SEVERITY_STYLE


class AlertsScreen(ModalScreen[Alert | None]):
    DEFAULT_CSS = """
    AlertsScreen { align: center middle; }
    AlertsScreen > .dialog { width: 110; max-width: 100%; height: auto; max-height: 90%; padding: 0 1; }
    AlertsScreen OptionList { height: auto; max-height: 30; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,a,q", "close", "Close", show=False)]

    def __init__(self, alerts: Sequence[Alert]) -> None:
        super().__init__()
        self.alerts = tuple(alerts)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"{len(self.alerts)} alerts — enter jumps to the object, esc closes",
                        classes="dialog--title")
            if self.alerts:
                yield OptionList(*(
                    # a badge (the theme's background on the severity colour): readable on the
                    # highlighted row too, where red on the cursor's blue was 2.8:1
                    Option(f"[b $background on {SEVERITY_STYLE[a.severity]}] {SEVERITY_MARK[a.severity]} "
                           f"{a.severity.label:<8}[/]"
                           f" {escape(a.text)}", id=str(i))
                    for i, a in enumerate(self.alerts)), id="alert-list")
            else:
                yield Label("✓ no alerts")

    def on_mount(self) -> None:
        for option_list in self.query(OptionList):
            option_list.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self.alerts[int(event.option.id or 0)])

    def action_close(self) -> None:
        self.dismiss(None)
