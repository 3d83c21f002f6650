"""The main screen: header, alerts, the three panes, filter and command lines, footer.

Layout follows the terminal: below 120x30 one pane at a time (1/2/3 switch);
from there hosts and tenants sit side by side above the fleet-wide containers
pane. NOC mode always shows one big pane and rotates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Input, Static

from console.fleet.alerts import Alert
from console.fleet.model import ContainerSnapshot, FleetSnapshot, NodeSnapshot, TenantSnapshot
from console.ui.cells import Context
from console.ui.messages import Activity, NeedSnapshot, OpenDetail, RunCommandLine
from console.ui.widgets.footer import StableFooter
from console.ui.widgets.header import AlertStrip, FleetHeader, NocSummary, OneLine
from console.ui.widgets.pane import Pane, Scope
from console.ui.widgets.table import VirtualTable

PANES = ("hosts", "containers", "tenants")
SPLIT_MIN = (120, 30)


@dataclass(frozen=True, slots=True)
class NavEntry:
    """Where Esc returns to: the pane, its drill-down scope and the row the cursor was on."""

    pane: str
    scope: Scope | None
    row_key: Any


class FleetScreen(Screen[None]):
    DEFAULT_CSS = """
    FleetScreen { layout: vertical; }
    #panes { height: 1fr; }
    #top { height: 1fr; }
    FleetScreen.-split #pane-hosts { width: 3fr; margin-right: 1; }
    FleetScreen.-split #pane-tenants { width: 2fr; }
    FleetScreen.-split #top { height: 12; }
    #activity { height: 1; }
    .command-input { height: 1; padding: 0 1; }
    """

    def __init__(self, *, noc: bool = False) -> None:
        super().__init__(id="fleet")
        self.noc = noc
        self.current = "hosts"
        self.split = False
        self.nav: list[NavEntry] = []
        self.snapshot: FleetSnapshot | None = None
        self.alerts: list[Alert] = []
        self.panes = {kind: Pane(kind) for kind in PANES}
        self._input_mode: str | None = None  # "filter" | "command"

    def compose(self) -> ComposeResult:
        yield FleetHeader(id="header")
        if self.noc:
            yield NocSummary(id="noc")
        yield AlertStrip(id="alerts")
        with Vertical(id="panes"):
            with Horizontal(id="top"):
                yield self.panes["hosts"]
                yield self.panes["tenants"]
            yield self.panes["containers"]
        yield Input(id="filter", classes="command-input", placeholder="filter: words node: tenant: state: image:")
        yield Input(id="command", classes="command-input", placeholder=":hosts :containers :tenants :node NAME")
        yield Static("", id="activity", markup=False)
        yield StableFooter(compact=True)

    def on_mount(self) -> None:
        for input_id in ("#filter", "#command"):
            self.query_one(input_id).display = False
        self.query_one("#activity").display = False
        self._relayout(self.size.width, self.size.height)
        self.post_message(NeedSnapshot())

    # -- layout ----------------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        self._relayout(event.size.width, event.size.height)

    def _relayout(self, width: int, height: int) -> None:
        self.split = not self.noc and width >= SPLIT_MIN[0] and height >= SPLIT_MIN[1]
        self.set_class(self.split, "-split")
        self._apply_visibility()
        self._size_top()

    def _size_top(self) -> None:
        if not self.split or self.snapshot is None:
            return
        rows = max(len(self.snapshot.nodes), min(len(self.snapshot.tenants), 12)) + 2
        limit = max(6, int(self.size.height * 0.4))
        self.query_one("#top").styles.height = min(rows, limit)

    def _apply_visibility(self) -> None:
        top = self.query_one("#top")
        if self.split:
            top.display = True
            for pane in self.panes.values():
                pane.display = True
            return
        top.display = self.current in ("hosts", "tenants")
        self.panes["hosts"].display = self.current == "hosts"
        self.panes["tenants"].display = self.current == "tenants"
        self.panes["containers"].display = self.current == "containers"

    def show_pane(self, kind: str, focus: bool = True) -> None:
        self.current = kind
        self._apply_visibility()
        if focus:
            self.panes[kind].table.focus()

    @property
    def pane(self) -> Pane:
        return self.panes[self.current]

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        # Side by side, tab or a click moves focus between panes: follow it.
        if not self.split:
            return
        for kind, pane in self.panes.items():
            if event.widget is pane.table:
                self.current = kind

    # -- data ------------------------------------------------------------------

    def apply(self, snap: FleetSnapshot, alerts: list[Alert], context: Context, *, mode: str,
              stale_after: float) -> None:
        first = self.snapshot is None
        self.snapshot = snap
        self.alerts = alerts
        self.query_one(FleetHeader).show(snap, context.now, mode=mode, stale_after=stale_after)
        self.query_one(AlertStrip).show(alerts)
        if self.noc:
            self.query_one(NocSummary).show(snap, alerts)
        for pane in self.panes.values():
            pane.update(snap, context)
        self._update_titles()
        if first:
            self._size_top()
            if self.focused is None:
                self.pane.table.focus()

    def refresh_header(self, now: float, *, mode: str, stale_after: float) -> None:
        self.query_one(FleetHeader).show(self.snapshot, now, mode=mode, stale_after=stale_after)

    def _update_titles(self) -> None:
        crumbs = self.breadcrumb()
        pane = self.panes["containers"]
        if crumbs and pane.scope is not None:
            title = pane.title_text(len(pane.table.rows))
            _, _, rest = title.partition(" · ")
            pane.query_one(".pane--title", OneLine).set(f"{crumbs} · {rest} · esc back")

    def breadcrumb(self) -> str:
        """"Hosts › node-2 › Containers" while drilled down; "" at the top."""
        scope = self.panes["containers"].scope
        if scope is None:
            return ""
        origin = "Hosts" if scope.kind == "node" else "Tenants"
        return f"{origin} › {scope.name} › Containers"

    # -- drill-down ------------------------------------------------------------

    def on_virtual_table_selected(self, event: VirtualTable.Selected) -> None:
        event.stop()
        row = event.row
        if isinstance(row, NodeSnapshot):
            self.drill(Scope("node", row.name), origin="hosts")
        elif isinstance(row, TenantSnapshot):
            self.drill(Scope("tenant", row.name), origin="tenants")
        elif isinstance(row, ContainerSnapshot):
            self.post_message(OpenDetail(row))

    def on_virtual_table_header_clicked(self, event: VirtualTable.HeaderClicked) -> None:
        event.stop()
        for pane in self.panes.values():
            if pane.table is event.table and event.column.sort:
                self.current = pane.kind
                pane.set_sort(event.column.sort)

    def drill(self, scope: Scope, origin: str) -> None:
        containers = self.panes["containers"]
        origin_pane = self.panes[origin]
        current = origin_pane.table.current
        self.nav.append(NavEntry(origin, containers.scope,
                                 origin_pane.table.row_key(current) if current is not None else None))
        containers.set_scope(scope)
        containers.table.cursor = 0
        containers.table.scroll_to(y=0, animate=False, immediate=True)
        self.show_pane("containers")
        self._update_titles()

    def back(self) -> bool:
        """One step back: close an input line, leave a drill-down, or clear the filter."""
        if self._input_mode is not None:
            self.close_input(cancel=True)
            return True
        if self.nav:
            entry = self.nav.pop()
            self.panes["containers"].set_scope(entry.scope)
            self.show_pane(entry.pane)
            if entry.row_key is not None:
                self.panes[entry.pane].table.move_to_key(entry.row_key)
            self._update_titles()
            return True
        if self.pane.filter_text:
            self.pane.set_filter("")
            self.post_message(Activity("filter cleared"))
            return True
        return False

    # -- filter and command lines ------------------------------------------------

    def open_input(self, mode: str) -> None:
        self.close_input(cancel=True)
        self._input_mode = mode
        box = self.query_one(f"#{mode}", Input)
        box.value = self.pane.filter_text if mode == "filter" else ""
        box.display = True
        self.set_focus(box)  # now, not after the queued keys (Widget.focus defers): they are the input's

    def close_input(self, cancel: bool) -> None:
        mode, self._input_mode = self._input_mode, None
        if mode is None:
            return
        box = self.query_one(f"#{mode}", Input)
        box.display = False
        if cancel and mode == "filter":
            pass  # esc keeps the filter that was applied live; esc again clears it
        self.pane.table.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter" and self._input_mode == "filter":
            self.pane.set_filter(event.value)
            self._update_titles()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "filter":
            self.pane.set_filter(event.value)
            errors = self.pane.query_errors
            self.close_input(cancel=False)
            if errors:
                self.post_message(Activity("; ".join(errors), error=True))
        elif event.input.id == "command":
            self.close_input(cancel=False)
            self.post_message(RunCommandLine(event.value))

    # -- targets and jumps ---------------------------------------------------------

    def selected(self) -> Any | None:
        return self.pane.table.current

    def focus_row(self, kind: str, key: Any) -> bool:
        pane = self.panes[kind]
        if kind == "containers" and not pane.table.move_to_key(key):
            # The object may be hidden by a drill-down or a filter: widen the view to find it.
            self.nav.clear()
            pane.set_scope(None)
            pane.set_filter("")
        self.show_pane(kind)
        found = pane.table.move_to_key(key)
        self._update_titles()
        return found

    def scope_to(self, kind: str, name: str) -> bool:
        """`:node NAME` / `:tenant NAME`: the containers of that node or tenant."""
        snap = self.snapshot
        if snap is not None:
            names = [n.name for n in snap.nodes] if kind == "node" else [t.name for t in snap.tenants]
            if name not in names:
                matches = [n for n in names if n.startswith(name)]
                if len(matches) != 1:
                    return False
                name = matches[0]
        self.drill(Scope(kind, name), origin="hosts" if kind == "node" else "tenants")
        return True
