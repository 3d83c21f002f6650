"""The audit log of actions, read through the actions port (ActionsPort.audit_entries) in a thread worker."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Static

from console.actions.redact import mask_text
from console.ports import ActionsPort
from console.fmt import printable
from console.ui.markup import escape
from console.ui.widgets.footer import StableFooter

COLUMNS = ("at", "who", "action", "target", "tenant", "result", "duration", "error")


def audit_cells(r: dict[str, Any]) -> tuple[Text, ...]:
    """One console.actions.AuditLog.read() entry as table cells: plain Text, since a DataTable
    reads a str cell as Rich markup, and records carry engine names and error text."""
    target = r.get("target") or {}
    where = target.get("node", "") + ("/" + target["name"] if target.get("id") and target.get("name") else "")
    dest = (r.get("params") or {}).get("to")
    if dest:  # a migration: where it went is half of what it did
        where += f" → {dest}"
    # a node action (drain, cordon) has no tenant of its own: say so rather than leave it blank
    tenant = target.get("tenant") or ("-" if target.get("id") else "(node)")
    ok = r.get("ok")
    result = "running" if ok is None else "ok" if ok else "FAILED"
    if r.get("status") and not ok:  # interrupted, left for recover: says more than FAILED
        result = str(r["status"]).upper()
    duration = r.get("duration")
    cells = (str(r.get("at") or ""), str(r.get("who") or ""), str(r.get("action") or ""), where, tenant, result,
             f"{duration:.1f}s" if isinstance(duration, int | float) else "", str(r.get("error") or ""))
    # masked again on the way out: a record written before a masking rule existed
    return tuple(Text(printable(mask_text(cell)), no_wrap=True, end="") for cell in cells)


class AuditScreen(Screen[None]):
    DEFAULT_CSS = """
    AuditScreen { layout: vertical; }
    AuditScreen DataTable { height: 1fr; }
    AuditScreen #audit-status { height: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = []

    def __init__(self, actions: ActionsPort | None, unavailable: str = "actions unavailable") -> None:
        super().__init__()
        self.actions = actions
        self.unavailable = unavailable

    def compose(self) -> ComposeResult:
        yield Static("Audit log › newest first   [$text-muted]esc back[/]", classes="detail--title")
        yield DataTable(id="audit", cursor_type="row", zebra_stripes=True)
        yield Static("", id="audit-status")
        yield StableFooter(compact=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for col in COLUMNS:
            table.add_column(col, key=col)
        if self.actions is None:
            self.query_one("#audit-status", Static).update(
                f"[$text-muted]audit log unavailable: {escape(self.unavailable)}[/]")
            return
        self.load()

    @work(thread=True, exclusive=True, group="audit")
    def load(self) -> None:
        if self.actions is None:
            return
        try:
            records = self.actions.audit_entries(500)
        except Exception as exc:  # shown, not raised
            self.app.call_from_thread(self._show_error, str(exc))
            return
        self.app.call_from_thread(self._show, records)

    def _show_error(self, text: str) -> None:
        self.query_one("#audit-status", Static).update(f"[$alert-critical]audit log: {escape(text)}[/]")

    def _show(self, records: list[dict[str, Any]]) -> None:
        table = self.query_one(DataTable)
        for i, r in enumerate(reversed(records)):
            table.add_row(*audit_cells(r), key=str(i))
        self.query_one("#audit-status", Static).update(f"[$text-muted]{len(records)} records[/]")
